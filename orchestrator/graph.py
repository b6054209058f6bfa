"""The plan as other tools read it: a GitHub Actions matrix, a GitLab CI child pipeline, a
Mermaid or Graphviz graph."""

from __future__ import annotations

import json
import shlex
from typing import Any

from .plan import ImagePlan
from .project import Project

COLOURS = {"fresh": "#c8e6c9", "stale": "#ffe0b2", "missing": "#ffcdd2"}


def levels(project: Project, plans: list[ImagePlan]) -> dict[str, int]:
    """Each planned image's dependency level: 0 for images built from outside the spec."""
    level: dict[str, int] = {}
    for plan in plans:  # plans come in build order: a parent before its children
        image = project.images[plan.name]
        parent = image.parent if image.parent_kind == "image" else None
        level[plan.name] = level.get(parent, -1) + 1 if parent else 0
    return level


def needs_job(plan: ImagePlan) -> bool:
    """Whether a pipeline builds the image: not fresh here, or fresh only in a registry
    (its job's `build --push` adds its tags in the registry, with nothing built)."""
    return plan.status != "fresh" or plan.remote is not None


def github_matrix(project: Project, plans: list[ImagePlan]) -> dict[str, Any]:
    """The images to build, grouped into levels; level N's images need only levels < N.

    `include` lists them all; `levels[N].include` is one job's matrix. Images that are
    fresh here are left out; a level with nothing to build has an empty `include`. An
    image fresh only in the shared cache (`fresh (registry)`) keeps its job: its
    `build --push` adds the image's tags in the registry, with nothing built or pulled.
    """
    level = levels(project, plans)
    todo = [p for p in plans if needs_job(p)]
    depth = max(level.values(), default=-1) + 1
    entries = [
        {
            "image": p.name,
            "level": level[p.name],
            "status": p.shown_status,
            "first_stage": p.first_stage,
            "fingerprint": p.fingerprint[:12],
        }
        for p in todo
    ]
    return {
        "include": entries,
        "levels": [{"include": [e for e in entries if e["level"] == n]} for n in range(depth)],
        "count": len(entries),
    }


GITLAB_TEMPLATE = ".rolecast"  # the hidden job every image's job extends
GITLAB_STAGE = "build"


def gitlab_job(image: str) -> str:
    return f"build {image}"


def gitlab_ci(
    project: Project, plans: list[ImagePlan], build_flags: list[str], includes: list[str]
) -> dict[str, Any]:
    """A GitLab CI child pipeline: one job per image to build, each `needs:` the jobs of
    its parent when that is built too, so an image starts as soon as its parent is done
    (level-0 images at once). Every job extends the hidden job `.rolecast`, whose script
    runs `rolecast build --plain FLAGS "$ROLECAST_IMAGE"`; `includes` (local files of the
    repository) bring the runner's settings, e.g. `default:` with `tags`, `image` and
    `before_script`. With nothing to build, one job says so: GitLab refuses a pipeline
    without jobs."""
    todo = [p for p in plans if needs_job(p)]
    built = {p.name for p in todo}
    command = shlex.join(["rolecast", "build", "--plain", *build_flags])
    pipeline: dict[str, Any] = {}
    if includes:
        pipeline["include"] = [{"local": path} for path in includes]
    pipeline["stages"] = [GITLAB_STAGE]
    pipeline[GITLAB_TEMPLATE] = {
        "stage": GITLAB_STAGE,
        "interruptible": True,
        "script": [f'{command} "$ROLECAST_IMAGE"'],
    }
    for plan in todo:
        image = project.images[plan.name]
        parent = image.parent if image.parent_kind == "image" else None
        pipeline[gitlab_job(plan.name)] = {
            "extends": GITLAB_TEMPLATE,
            "variables": {"ROLECAST_IMAGE": plan.name},
            "needs": [gitlab_job(parent)] if parent in built else [],
        }
    if not todo:
        pipeline["rolecast: nothing to build"] = {
            "stage": GITLAB_STAGE,
            "script": ["echo 'rolecast: every image is fresh'"],
        }
    return pipeline


def _edges(project: Project, plans: list[ImagePlan]) -> list[tuple[str, str, bool]]:
    """(parent, child, parent is outside the spec) for each planned image whose parent is
    planned too or is a base or external image; outside parents are named by kind."""
    planned = {p.name for p in plans}
    edges = []
    for plan in plans:
        image = project.images[plan.name]
        if image.parent_kind == "image" and image.parent in planned:
            edges.append((image.parent, plan.name, False))
        elif image.parent_kind != "image":
            edges.append((f"{image.parent_kind}: {image.parent}", plan.name, True))
    return edges


def _node(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def mermaid(project: Project, plans: list[ImagePlan]) -> str:
    lines = ["graph TD"]
    for plan in plans:
        label = f"{plan.name}<br/>{plan.status}"
        lines.append(f'  {_node(plan.name)}["{label}"]:::{plan.status}')
    for parent, child, outside in _edges(project, plans):
        shape = f'(["{parent}"])' if outside else ""
        lines.append(f"  {_node(parent)}{shape} --> {_node(child)}")
    for status, colour in COLOURS.items():
        lines.append(f"  classDef {status} fill:{colour},stroke:#555")
    return "\n".join(dict.fromkeys(lines)) + "\n"


def dot(project: Project, plans: list[ImagePlan]) -> str:
    lines = ["digraph rolecast {", "  rankdir=TB;", "  node [shape=box, style=filled];"]
    for plan in plans:
        label = json.dumps(f"{plan.name}\n{plan.status}")
        colour = COLOURS[plan.status]
        lines.append(f'  {json.dumps(plan.name)} [label={label}, fillcolor="{colour}"];')
    for parent, child, outside in _edges(project, plans):
        if outside:
            lines.append(f"  {json.dumps(parent)} [shape=ellipse, fillcolor=white];")
        lines.append(f"  {json.dumps(parent)} -> {json.dumps(child)};")
    lines.append("}")
    return "\n".join(dict.fromkeys(lines)) + "\n"
