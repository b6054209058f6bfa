"""Which images must be built, from which stage, and why: fresh, stale or missing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fingerprint import Manifest, first_change, image_manifest
from .project import Project, ResolvedImage
from .render import cache_tag

STATE_DIR = Path(".rolecast") / "state"


@dataclass(frozen=True)
class ImagePlan:
    name: str
    status: str  # fresh | stale | missing
    reason: str
    first_stage: str | None
    fingerprint: str
    image_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "first_stage": self.first_stage,
            "fingerprint": self.fingerprint,
            "image_id": self.image_id,
        }


def state_file(project: Project, image: ResolvedImage) -> Path:
    return project.root / STATE_DIR / f"{image.slug}.json"


def load_state(project: Project, image: ResolvedImage) -> dict[str, Any] | None:
    try:
        data = json.loads(state_file(project, image).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def save_state(
    project: Project, image: ResolvedImage, manifest: Manifest, image_id: str, tags: list[str]
) -> None:
    """Record a successful build: what went in, and the image that came out."""
    path = state_file(project, image)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"image_id": image_id, "tags": tags, **manifest.as_dict()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def image_id_of(client: Any, reference: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(reference).id)
    except ImageNotFound:
        return None


def layered(project: Project, image: ResolvedImage) -> bool:
    """Whether the image caches one stage per role (`layering: role`, not a playbook image)."""
    mode = image.spec.layering or project.loaded.spec.defaults.layering
    return mode == "role" and image.playbook is None


def cached_start(project: Project, image: ResolvedImage, manifest: Manifest, client: Any) -> int:
    """The index of the deepest stage whose cache image exists, or -1 when none does."""
    if not layered(project, image):
        return -1
    for index in reversed(range(len(manifest.stages) - 1)):  # the commit stage is not cached
        if image_id_of(client, cache_tag(image.slug, manifest.stages[index].fingerprint)):
            return index
    return -1


def parent_words(project: Project, image: ResolvedImage) -> str:
    if image.parent_kind == "image":
        return f"image {image.parent}"
    if image.parent_kind == "base":
        return f"base image {image.parent}"
    return f"image {image.parent}"


def assess(
    project: Project,
    image: ResolvedImage,
    parent_id: str,
    parent_fresh: bool,
    client: Any,
    use_cache: bool = True,
) -> tuple[ImagePlan, Manifest]:
    """The plan for one image, given its parent's current id and whether that is fresh."""
    manifest = image_manifest(project, image, parent_id)
    state = load_state(project, image)

    def result(status: str, reason: str, first: str | None) -> tuple[ImagePlan, Manifest]:
        current = str(state["image_id"]) if state else None
        if first is not None:
            # What the build will run first: after the deepest cached stage, if any.
            use = use_cache and parent_fresh
            start = cached_start(project, image, manifest, client) if use else -1
            first = manifest.stages[start + 1].name
        return ImagePlan(image.name, status, reason, first, manifest.fingerprint, current), manifest

    first_stage = manifest.stages[0].name
    if state is None:
        return result("missing", "never built", first_stage)
    if image_id_of(client, str(state.get("image_id"))) is None:
        return result("missing", "its last image is gone from the Docker engine", first_stage)
    if not parent_fresh:
        return result("stale", f"{image.parent} must be rebuilt first", first_stage)
    old = Manifest.from_dict(state)
    change = first_change(old, manifest, parent_words(project, image))
    if change is None:
        return result("fresh", "nothing changed", None)
    return result("stale", change, first_stage)


def plan_images(project: Project, names: list[str], client: Any) -> list[ImagePlan]:
    """The plan for the named images and their parents, in build order; builds nothing."""
    plans: dict[str, ImagePlan] = {}
    for name in project.select(names):
        image = project.images[name]
        if image.parent_kind == "image":
            parent_plan = plans[image.parent]
            parent_id = parent_plan.image_id or "unbuilt"
            parent_fresh = parent_plan.status == "fresh"
        else:
            reference = project.parent_reference(image)
            parent_id = image_id_of(client, reference) or f"absent {reference}"
            parent_fresh = True
        plans[name], _ = assess(project, image, parent_id, parent_fresh, client)
    return list(plans.values())
