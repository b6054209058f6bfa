"""The stage cache: `rolecast-cache/<image>:<stage fingerprint>` images in the engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .fingerprint import image_manifest
from .plan import image_id_of, layered, load_state
from .project import Project
from .render import CACHE_REPOSITORY, apt_volumes, cache_tag


@dataclass(frozen=True)
class CachedStage:
    reference: str
    image: str  # the image's slug, as in the repository name
    stage: str  # the stage's name, when a current or last-built manifest knows it
    image_id: str
    size: int
    created: dt.datetime
    current: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "image": self.image,
            "stage": self.stage,
            "image_id": self.image_id,
            "size": self.size,
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "current": self.current,
        }


def current_stages(project: Project, client: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(cache tag -> stage name) for the current fingerprints, and for the last builds."""
    current: dict[str, str] = {}
    known: dict[str, str] = {}
    built_ids: dict[str, str] = {}
    for name in project.order:
        image = project.images[name]
        state = load_state(project, image)
        if state is not None:
            built_ids[name] = str(state.get("image_id"))
            for stage in state.get("stages", []):
                known[cache_tag(image.slug, str(stage["fingerprint"]))] = str(stage["name"])
        if not layered(project, image):
            continue
        if image.parent_kind == "image":
            parent_id = built_ids.get(image.parent, "unbuilt")
        else:
            reference = project.parent_reference(image)
            parent_id = image_id_of(client, reference) or f"absent {reference}"
        manifest = image_manifest(project, image, parent_id)
        for stage in manifest.stages[:-1]:
            current[cache_tag(image.slug, stage.fingerprint)] = stage.name
    return current, known | current


def cached_stages(project: Project, client: Any) -> list[CachedStage]:
    """The stage images of this project's images in the engine, newest first."""
    current, names = current_stages(project, client)
    slugs = {image.slug for image in project.images.values()}
    found: list[CachedStage] = []
    for entry in client.images.list():
        for tag in entry.tags:
            if not tag.startswith(CACHE_REPOSITORY + "/"):
                continue
            slug = tag[len(CACHE_REPOSITORY) + 1 :].rsplit(":", 1)[0]
            if slug not in slugs:
                continue  # another project's, or an image since removed from the spec
            created = dt.datetime.fromisoformat(entry.attrs["Created"][:26].rstrip("Z"))
            found.append(
                CachedStage(
                    reference=tag,
                    image=slug,
                    stage=names.get(tag, "-"),
                    image_id=str(entry.id),
                    size=int(entry.attrs.get("Size") or 0),
                    created=created.replace(tzinfo=dt.UTC),
                    current=tag in current,
                )
            )
    return sorted(found, key=lambda s: (s.created, s.reference), reverse=True)


def remove_apt_volumes(project: Project, client: Any, dry_run: bool = False) -> list[str]:
    """Remove the apt cache volumes of this project's images (the next build refills them)."""
    from docker.errors import DockerException

    removed = []
    for image in project.images.values():
        for name in apt_volumes(image.slug):
            try:
                volume = client.volumes.get(name)
                if not dry_run:
                    volume.remove()
                removed.append(name)
            except DockerException:
                pass  # absent, or in use by a running build
    return removed


def prune(
    project: Project, client: Any, keep: int = 0, dry_run: bool = False
) -> tuple[list[CachedStage], list[CachedStage]]:
    """Remove stage images not of a current fingerprint, but the `keep` newest per image.

    Returns (removed, kept). Removing the last tag of an image deletes it and the
    layers no other image uses; nothing outside `rolecast-cache/` is touched.
    """
    stages = cached_stages(project, client)
    removed: list[CachedStage] = []
    kept: list[CachedStage] = []
    older: dict[str, int] = {}
    for stage in stages:  # newest first
        if stage.current:
            kept.append(stage)
            continue
        older[stage.image] = older.get(stage.image, 0) + 1
        if older[stage.image] <= keep:
            kept.append(stage)
        else:
            removed.append(stage)
    if not dry_run:
        from docker.errors import DockerException

        for stage in removed:
            try:
                client.api.remove_image(stage.reference, noprune=False)
            except DockerException:
                pass  # in use by a running build: the next prune removes it
    return removed, kept
