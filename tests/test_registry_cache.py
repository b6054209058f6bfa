"""The image itself in the shared cache (`--cache-to`), besides its stages: a second
runner finds it by its final fingerprint, built or kept fresh."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from orchestrator.build.context import BuildOptions, Context
from orchestrator.build.image import build_image
from orchestrator.names import shared_stage_tag
from orchestrator.plan import plan_images
from orchestrator.project import Project, load_project
from orchestrator.tags import TagRules

from .fakes import FakeEngine
from .test_one_build import FakePacker, setting, write_project  # noqa: F401  (the fixture)
from .test_registry import Store, served  # noqa: F401  (the fixture)

CACHE = "example.test/team/cache"


def sharing(project: Project, engine: FakeEngine) -> Context:
    rules = TagRules(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return Context(project, BuildOptions(cache_to=CACHE), engine, lambda event: None, rules)


def test_cache_to_shares_the_image_by_its_final_fingerprint_built_and_fresh(
    setting: tuple[Project, FakeEngine, FakePacker],  # noqa: F811
) -> None:
    project, engine, _ = setting
    built = build_image(sharing(project, engine), "app", None)
    assert built.fingerprint is not None
    final = shared_stage_tag(CACHE, "app", built.fingerprint)
    assert final in engine.registry
    assert any("the image" in note for note in built.notes)
    engine.registry.clear()
    fresh = build_image(sharing(project, engine), "app", None)
    assert fresh.result == "fresh"
    assert final in engine.registry


def test_plan_finds_images_fresh_in_the_shared_cache_a_child_by_its_parent_config(
    tmp_path: Path,
    served: tuple[Store, str],  # noqa: F811
) -> None:
    store, host = served
    engine = FakeEngine()
    engine.add_image("example/base:1")
    project = load_project(write_project(tmp_path))
    cache = f"{host}/team/cache"
    before = {p.name: p for p in plan_images(engine, project, [], cache)}
    assert [p.status for p in before.values()] == ["missing", "missing"]
    app = store.add_image("team/cache", f"app-{before['app'].fingerprint[:32]}", {})
    after = {p.name: p for p in plan_images(engine, project, [], cache)}
    assert after["app"].status == "fresh"
    assert after["app"].shown_status == "fresh (registry)"
    assert after["app"].image_id == app.config_digest
    assert after["app"].as_dict()["registry"] == f"{cache}:app-{before['app'].fingerprint[:32]}"
    # The child's fingerprint now holds its parent's id: the config digest, not "unbuilt".
    child = after["child"]
    assert (child.status, child.fingerprint != before["child"].fingerprint) == ("missing", True)
    store.add_image("team/cache", f"child-{child.fingerprint[:32]}", {})
    last = {p.name: p for p in plan_images(engine, project, [], cache)}
    assert last["child"].shown_status == "fresh (registry)"
    assert [p.status for p in plan_images(engine, project, [])] == ["missing", "missing"]
