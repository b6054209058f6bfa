"""The image itself in the shared cache (`--cache-to`), besides its stages: a second
runner finds it by its final fingerprint, built or kept fresh."""

from __future__ import annotations

import datetime as dt

from orchestrator.build.context import BuildOptions, Context
from orchestrator.build.image import build_image
from orchestrator.names import shared_stage_tag
from orchestrator.project import Project
from orchestrator.tags import TagRules

from .fakes import FakeEngine
from .test_one_build import FakePacker, setting  # noqa: F401  (the fixture)

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
