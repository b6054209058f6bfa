"""The image itself in the shared cache (`--cache-to`), besides its stages: a second
runner finds it by its final fingerprint (plan: `fresh (registry)`), and adds its tags in
the registry (`--push`) or pulls only it, never a stage, never a container."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orchestrator.build import packer
from orchestrator.build.context import BuildOptions, Context
from orchestrator.build.image import build_image
from orchestrator.history import History
from orchestrator.names import FINGERPRINT_LABEL, shared_stage_tag
from orchestrator.plan import plan_images
from orchestrator.project import Project, load_project
from orchestrator.registry import Manifest
from orchestrator.state import LastBuild
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


def registry_project(root: Path, host: str) -> Project:
    write_project(root)
    spec = root / "rolecast.yml"
    spec.write_text(spec.read_text().replace("example.test/team", f"{host}/team"))
    return load_project(root)


def remote_fleet(
    root: Path, store: Store, host: str, engine: FakeEngine
) -> tuple[Project, dict[str, Manifest]]:
    """The project's app and child in the shared cache under their current fingerprints."""
    project = registry_project(root, host)
    cache = f"{host}/team/cache"
    held: dict[str, Manifest] = {}
    for name in ("app", "child"):
        (found,) = [p for p in plan_images(engine, project, [], cache) if p.name == name]
        held[name] = store.add_image("team/cache", f"{name}-{found.fingerprint[:32]}", {})
    return project, held


def faked_build(
    root: Path, store: Store, host: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeEngine, FakePacker, Project, dict[str, Manifest]]:
    """A fake engine with the base image, a fake Packer, and the fleet in the cache."""
    engine = FakeEngine()
    engine.add_image("example/base:1")
    fake = FakePacker(engine, root)
    monkeypatch.setattr(packer, "run", fake)
    project, held = remote_fleet(root, store, host, engine)
    return engine, fake, project, held


def in_context(project: Project, engine: FakeEngine, **options: Any) -> Context:
    rules = TagRules(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return Context(project, BuildOptions(**options), engine, lambda event: None, rules)


def test_build_push_of_images_fresh_in_the_registry_copies_their_tags_there(
    tmp_path: Path,
    served: tuple[Store, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, host = served
    engine, fake, project, held = faked_build(tmp_path, store, host, monkeypatch)
    ctx = in_context(project, engine, push=True, cache_from=f"{host}/team/cache")
    app = build_image(ctx, "app", None)
    child = build_image(ctx, "child", app)
    for result, name in ((app, "app"), (child, "child")):
        assert result.result == "fresh"
        fingerprint = str(result.fingerprint)[:32]
        assert result.notes == [f"fresh (registry): {host}/team/cache:{name}-{fingerprint}"]
        assert result.pushed == [
            {"reference": f"{host}/team/{name}:latest", "digest": held[name].digest}
        ]
        assert store.manifests[f"team/{name}"]["latest"][1] == held[name].data
        assert result.image_id == held[name].config_digest
        assert LastBuild.read(project, project.images[name]).image_id == held[name].config_digest  # type: ignore[union-attr]
    assert fake.sources == []  # no Packer, no container
    assert [c for c in engine.calls if c[0] in ("pull", "push", "run")] == []
    (record,) = History(project.root).records(["child"])
    assert (record.result, record.pushed) == ("fresh", child.pushed)


def test_build_without_push_pulls_only_the_final_image(
    tmp_path: Path,
    served: tuple[Store, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, host = served
    engine, _, project, _ = faked_build(tmp_path, store, host, monkeypatch)
    engine.pullable |= {f"{host}/team/cache:{tag}" for tag in store.manifests["team/cache"]}
    ctx = in_context(project, engine, cache_from=f"{host}/team/cache")
    app = build_image(ctx, "app", None)
    assert app.result == "fresh"
    pulls = [c[1] for c in engine.calls if c[0] == "pull"]
    assert pulls == [f"{host}/team/cache:app-{app.fingerprint[:32]}"]  # type: ignore[index]
    assert engine.tags() == {"example/base:1", f"{host}/team/app:latest"}
    assert app.image_id == engine.image(f"{host}/team/app:latest").id  # type: ignore[union-attr]
    # The next plan, without the cache, finds it fresh in the engine.
    (again, _) = plan_images(engine, project, [])
    assert again.status == "fresh" and again.remote is None


def test_an_image_its_own_repository_holds_under_an_immutable_tag_is_fresh_there(
    tmp_path: Path,
    served: tuple[Store, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second run of the same commit (another runner, a retried pipeline) with --push
    and no shared cache: the image's own repository already has it under its immutable
    tag, with the same fingerprint; its tags are added there, nothing is built."""
    store, host = served
    engine, fake, project, _ = faked_build(tmp_path, store, host, monkeypatch)
    rules = TagRules(extra=("build-7",), now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    def own(image: Any, fingerprint: str) -> list[str]:
        return rules.immutable(image, fingerprint)

    (before,) = plan_images(engine, project, ["app"])
    assert before.status == "missing"
    held = store.add_image("team/app", "build-7", {FINGERPRINT_LABEL: before.fingerprint})
    (seen,) = plan_images(engine, project, ["app"], None, own)
    assert seen.shown_status == "fresh (registry)"
    assert seen.as_dict()["registry"] == f"{host}/team/app:build-7"
    assert plan_images(engine, project, ["app"])[0].status == "missing"  # not asked: not pushing
    ctx = Context(project, BuildOptions(push=True), engine, lambda event: None, rules)
    app = build_image(ctx, "app", None)
    assert app.result == "fresh"
    assert [p["reference"] for p in app.pushed] == [
        f"{host}/team/app:build-7",  # immutable first
        f"{host}/team/app:latest",
    ]
    assert store.manifests["team/app"]["latest"][1] == held.data
    assert fake.sources == []  # no Packer, no container
    assert [c for c in engine.calls if c[0] in ("pull", "push", "run")] == []
    # Another image under that tag (its label names another fingerprint): not this one.
    store.add_image("team/app", "build-7", {FINGERPRINT_LABEL: "0" * 64})
    (other,) = plan_images(engine, project, ["app"], None, own)
    assert other.remote is None and other.status == "missing"
