"""The plan for other tools: a GitHub Actions matrix by level, Mermaid and Graphviz graphs."""

from __future__ import annotations

from dataclasses import replace

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
