"""The plan for other tools: a GitHub Actions matrix by level, a GitLab CI child pipeline,
Mermaid and Graphviz graphs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml

from orchestrator import graph
from orchestrator.plan import ImagePlan, InRegistry
from orchestrator.project import load_project

from .conftest import ROOT


def plans(**status: str) -> list[ImagePlan]:
    names = ["base", "web@staging", "web@production", "app"]
    return [ImagePlan(n, status.get(n, "fresh"), "why", None, "f" * 64, None) for n in names]


def test_github_matrix_groups_what_needs_building_by_level() -> None:
    project = load_project(ROOT)
    matrix = graph.github_matrix(project, plans(base="stale", app="stale"))
    assert [e["image"] for e in matrix["include"]] == ["base", "app"]
    assert [[e["image"] for e in level["include"]] for level in matrix["levels"]] == [
        ["base"],
        ["app"],
    ]
    assert matrix["count"] == 2
    nothing = graph.github_matrix(project, plans())
    assert nothing["include"] == [] and nothing["count"] == 0


def test_an_image_fresh_only_in_the_shared_cache_keeps_its_job_to_add_its_tags() -> None:
    project = load_project(ROOT)
    remote = InRegistry("127.0.0.1:5000/cache:app-ffff", "sha256:" + "a" * 64, None)  # type: ignore[arg-type]
    listed = [replace(p, remote=remote) if p.name == "app" else p for p in plans()]
    matrix = graph.github_matrix(project, listed)
    assert [(e["image"], e["status"]) for e in matrix["include"]] == [("app", "fresh (registry)")]
    assert matrix["count"] == 1


def test_mermaid_and_dot_colour_each_image_by_status() -> None:
    project = load_project(ROOT)
    text = graph.mermaid(project, plans(app="missing"))
    assert text.startswith("graph TD\n")
    assert '  n_app["app<br/>missing"]:::missing' in text
    assert "  n_base --> n_web_staging" in text
    assert "classDef missing fill:#ffcdd2" in text
    dot = graph.dot(project, plans(app="stale"))
    assert dot.startswith("digraph rolecast {")
    assert '"app" [label="app\\nstale", fillcolor="#ffe0b2"];' in dot
    assert '"base" -> "app";' in dot
    assert '"base: debian-bookworm" -> "base";' in dot


# GitLab's rules for a pipeline file, as its CI/CD YAML reference states them (the schema
# itself is not part of these tests): the global keywords; a job's keys; `needs` naming
# jobs of the same pipeline, at most 50, without a cycle; a hidden job starts with a dot.
GITLAB_GLOBAL = {"default", "include", "stages", "variables", "workflow"}
GITLAB_JOB_KEYS = {
    "after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
    "dependencies", "environment", "extends", "image", "interruptible", "needs", "parallel",
    "resource_group", "retry", "rules", "script", "services", "stage", "tags", "timeout",
    "trigger", "variables", "when",
}  # fmt: skip


def gitlab_jobs(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The visible jobs, each merged with what it extends, after checking GitLab's rules."""
    jobs = {k: v for k, v in pipeline.items() if k not in GITLAB_GLOBAL}
    for name, job in jobs.items():
        assert isinstance(job, dict) and set(job) <= GITLAB_JOB_KEYS, name
        assert 0 < len(name) <= 255, name
    visible: dict[str, dict[str, Any]] = {}
    for name, job in jobs.items():
        if name.startswith("."):
            continue
        merged = {**jobs[job["extends"]], **job} if "extends" in job else dict(job)
        assert merged.get("script") and merged.get("stage") in pipeline["stages"], name
        visible[name] = merged
    assert visible, "GitLab refuses a pipeline without a visible job"
    for name, job in visible.items():
        needs = job.get("needs", [])
        assert len(needs) <= 50 and all(n in visible for n in needs), (name, needs)
    done: set[str] = set()
    while len(done) < len(visible):  # a cycle leaves jobs that never become ready
        ready = {n for n, j in visible.items() if n not in done and set(j.get("needs", [])) <= done}
        assert ready, f"needs form a cycle among {set(visible) - done}"
        done |= ready
    return visible


def test_gitlab_ci_has_one_job_per_image_to_build_after_its_parent_s_job() -> None:
    project = load_project(ROOT)
    listed = plans(base="stale", **{"web@staging": "missing"}, app="stale")
    flags = ["--push", "--cache-from", "registry.test/team/cache"]
    text = yaml.safe_dump(graph.gitlab_ci(project, listed, flags, ["ci/rolecast-jobs.yml"]))
    pipeline = yaml.safe_load(text)
    jobs = gitlab_jobs(pipeline)
    built = [p.name for p in listed if p.status != "fresh"]
    assert sorted(jobs) == sorted(f"build {name}" for name in built)
    for name in built:
        image = project.images[name]
        parent = image.parent if image.parent_kind == "image" else None
        expected = [f"build {parent}"] if parent in built else []
        assert jobs[f"build {name}"]["needs"] == expected
        assert jobs[f"build {name}"]["variables"] == {"ROLECAST_IMAGE": name}
    assert jobs["build web@staging"]["needs"] == ["build base"]  # the graph, said twice
    assert jobs["build base"]["script"] == [
        'rolecast build --plain --push --cache-from registry.test/team/cache "$ROLECAST_IMAGE"'
    ]
    assert pipeline["include"] == [{"local": "ci/rolecast-jobs.yml"}]


def test_gitlab_ci_with_nothing_to_build_still_has_a_job() -> None:
    project = load_project(ROOT)
    pipeline = graph.gitlab_ci(project, plans(), [], [])
    assert list(gitlab_jobs(pipeline)) == ["rolecast: nothing to build"]
    remote = InRegistry("127.0.0.1:5000/cache:app-ffff", "sha256:" + "a" * 64, None)  # type: ignore[arg-type]
    listed = [replace(p, remote=remote) if p.name == "app" else p for p in plans()]
    assert list(gitlab_jobs(graph.gitlab_ci(project, listed, [], []))) == ["build app"]


def test_the_gitlab_rules_catch_a_need_on_a_job_not_in_the_pipeline() -> None:
    project = load_project(ROOT)
    pipeline = graph.gitlab_ci(project, plans(app="stale"), [], [])
    pipeline["build app"]["needs"] = ["build base"]
    with pytest.raises(AssertionError):
        gitlab_jobs(pipeline)
    pipeline["build base"] = {"extends": ".rolecast", "needs": ["build app"]}
    with pytest.raises(AssertionError, match="cycle"):
        gitlab_jobs(pipeline)
