"""The image graph of a run, with the build of one image faked: order, -j, keep-going,
fail-fast, and each child handed its parent's result."""

from __future__ import annotations

import threading

from orchestrator.build.fleet import Fleet
from orchestrator.errors import BuildFailedError, InterruptedBuildError
from orchestrator.project import load_project
from orchestrator.report import ImageResult

from .conftest import ROOT


def example_fleet(jobs: int, keep_going: bool) -> Fleet:
    project = load_project(ROOT)
    order = list(project.order)
    return Fleet(
        order=order,
        parents={name: project.parent_in_spec(name) for name in order},
        jobs=jobs,
        keep_going=keep_going,
    )


class FakeBuilds:
    """Records what was started, with the parent result it was handed; fails on demand."""

    def __init__(self, failing: set[str], interrupted: set[str] | None = None) -> None:
        self.failing = failing
        self.interrupted = interrupted or set()
        self.started: list[str] = []
        self.handed: dict[str, str | None] = {}
        self.lock = threading.Lock()

    def __call__(self, name: str, parent: ImageResult | None) -> ImageResult:
        with self.lock:
            self.started.append(name)
            self.handed[name] = parent.image_id if parent else None
        if name in self.failing:
            raise BuildFailedError(f"image {name}: failed")
        if name in self.interrupted:
            raise InterruptedBuildError(f"build of {name} interrupted")
        return ImageResult(name=name, result="built", image_id=f"id-{name}")


def test_a_failure_skips_its_dependents_and_the_others_go_on() -> None:
    builds = FakeBuilds({"web@staging"})
    outcome = example_fleet(jobs=2, keep_going=True).run(builds)
    results = {i.name: (i.result, i.error) for i in outcome.results}
    assert results == {
        "base": ("built", None),
        "web@staging": ("failed", "image web@staging: failed"),
        "web@production": ("built", None),
        "app": ("built", None),
        "db": ("built", None),
    }
    assert builds.started[0] == "base"
    assert set(builds.started) == {"base", "web@staging", "web@production", "app", "db"}
    assert [i.name for i in outcome.results] == [
        "base",
        "web@staging",
        "web@production",
        "app",
        "db",
    ]
    assert [str(f) for f in outcome.failures] == ["image web@staging: failed"]


def test_a_failed_parent_skips_its_children() -> None:
    builds = FakeBuilds({"base"})
    skipped: list[tuple[str, str]] = []
    fleet = example_fleet(jobs=2, keep_going=True)
    fleet.on_skip = lambda name, why: skipped.append((name, why))
    outcome = fleet.run(builds)
    assert builds.started == ["base"]
    assert {i.name: (i.result, i.error) for i in outcome.results if i.result == "skipped"} == {
        "web@staging": ("skipped", "base failed"),
        "web@production": ("skipped", "base failed"),
        "app": ("skipped", "base failed"),
        "db": ("skipped", "base failed"),
    }
    assert sorted(skipped) == sorted(
        (name, "base failed") for name in ("web@staging", "web@production", "app", "db")
    )


def test_fail_fast_starts_nothing_after_a_failure() -> None:
    project = load_project(ROOT)
    order = project.select(["base", "app"])
    builds = FakeBuilds({"base"})
    fleet = Fleet(order, {n: project.parent_in_spec(n) for n in order}, 1, keep_going=False)
    outcome = fleet.run(builds)
    assert builds.started == ["base"]
    assert outcome.results[1].error == "not started: an earlier image failed (--fail-fast)"


def test_each_child_is_handed_its_parents_result() -> None:
    builds = FakeBuilds(set())
    outcome = example_fleet(jobs=2, keep_going=True).run(builds)
    assert [i.result for i in outcome.results] == ["built"] * 5
    assert builds.handed == {
        "base": None,
        "web@staging": "id-base",
        "web@production": "id-base",
        "app": "id-base",
        "db": "id-base",
    }


def test_an_interrupted_image_starts_nothing_more() -> None:
    builds = FakeBuilds(set(), interrupted={"base"})
    outcome = example_fleet(jobs=1, keep_going=True).run(builds)
    assert builds.started == ["base"]
    assert len(outcome.interrupted) == 1
    assert {i.error for i in outcome.results[1:]} == {"not started: the build was interrupted"}
