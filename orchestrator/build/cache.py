"""What `rolecast cache` lists and removes: this project's stage images and apt volumes,
the volumes and stages of checkouts that are gone, and the adoption of stages named
before they were scoped by project."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engines import Engine
from ..fingerprint import image_manifest
from ..names import (
    CHECKOUT_LABEL,
    HOST_LABEL,
    PROJECT_LABEL,
    apt_volumes,
    legacy_stage_tag,
    stage_prefix,
    stage_tag,
)
from ..project import Project
from ..state import STATE_DIR, LastBuild

ADOPTED_MARKER = "stages-scoped"


def adopt_legacy_stages(engine: Engine, project: Project) -> list[str]:
    """Stages named by image only (before they were scoped by project) that this project's
    last builds recorded are renamed as this project's, once per project; the others are
    left alone (they may be another project's)."""
    marker = project.root / STATE_DIR / ADOPTED_MARKER
    if marker.exists():
        return []
    tags = {tag for found in engine.images() for tag in found.tags}
    adopted = []
    for image in project.images.values():
        last = LastBuild.read(project, image)
        for stage in last.manifest.stages[:-1] if last else []:
            legacy = legacy_stage_tag(image.slug, stage.fingerprint)
            scoped = stage_tag(project.identity, image.slug, stage.fingerprint)
            if legacy in tags and scoped not in tags:
                engine.tag(legacy, scoped)
                engine.remove_image(legacy)
                adopted.append(scoped)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("stages are named rolecast-cache/PROJECT/IMAGE:FINGERPRINT\n")
    return adopted


# -- rolecast cache ls / prune ---------------------------------------------------------------


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


def current_stages(engine: Engine, project: Project) -> tuple[dict[str, str], dict[str, str]]:
    """(stage tag -> stage name) for the current fingerprints, and for the last builds."""
    current: dict[str, str] = {}
    known: dict[str, str] = {}
    built_ids: dict[str, str] = {}
    for name in project.order:
        image = project.images[name]
        last = LastBuild.read(project, image)
        if last is not None:
            built_ids[name] = last.image_id
            for stage in last.manifest.stages:
                known[stage_tag(project.identity, image.slug, stage.fingerprint)] = stage.name
        if not image.layered:
            continue
        if image.parent_kind == "image":
            parent_id = built_ids.get(image.parent, "unbuilt")
        else:
            reference = project.parent_reference(image)
            found = engine.image(reference)
            parent_id = found.id if found else f"absent {reference}"
        manifest = image_manifest(project, image, parent_id)
        for stage in manifest.stages[:-1]:
            current[stage_tag(project.identity, image.slug, stage.fingerprint)] = stage.name
    return current, known | current


def cached_stages(engine: Engine, project: Project) -> list[CachedStage]:
    """The stage images of this project in the engine, newest first."""
    adopt_legacy_stages(engine, project)
    current, names = current_stages(engine, project)
    prefix = stage_prefix(project.identity)
    found: list[CachedStage] = []
    for entry in engine.images():
        for tag in entry.tags:
            if not tag.startswith(prefix):
                continue  # another project's, or not a stage
            found.append(
                CachedStage(
                    reference=tag,
                    image=tag[len(prefix) :].rsplit(":", 1)[0],
                    stage=names.get(tag, "-"),
                    image_id=entry.id,
                    size=entry.size,
                    created=entry.created,
                    current=tag in current,
                )
            )
    return sorted(found, key=lambda s: (s.created, s.reference), reverse=True)


def prune(
    engine: Engine, project: Project, keep: int = 0, dry_run: bool = False
) -> tuple[list[CachedStage], list[CachedStage]]:
    """Remove this project's stage images not of a current fingerprint, but the `keep`
    newest per image. Returns (removed, kept). Removing the last tag of an image deletes
    it and the layers no other image uses; nothing outside this project's stages is
    touched."""
    removed: list[CachedStage] = []
    kept: list[CachedStage] = []
    older: dict[str, int] = {}
    for stage in cached_stages(engine, project):  # newest first
        if stage.current:
            kept.append(stage)
            continue
        older[stage.image] = older.get(stage.image, 0) + 1
        (kept if older[stage.image] <= keep else removed).append(stage)
    if not dry_run:
        for stage in removed:
            engine.remove_image(stage.reference)  # in use by a running build: the next prune
    return removed, kept


def prune_apt_volumes(engine: Engine, project: Project, dry_run: bool = False) -> list[str]:
    """Remove this project's apt cache volumes (the next build refills them), and the
    volumes and stages of checkouts on this host that no longer exist."""
    removed = []
    for image in project.images.values():
        for name in apt_volumes(project.identity, image.slug):
            if dry_run and engine.volume_exists(name) or not dry_run and engine.remove_volume(name):
                removed.append(f"volume {name}")
    return removed + forget_checkouts(engine, gone, dry_run)


def gone(checkout: str) -> bool:
    return not Path(checkout).exists()


def forget_checkouts(
    engine: Engine, chosen: Callable[[str], bool], dry_run: bool = False
) -> list[str]:
    """Remove the apt volumes and stage images of the checkouts on this host that `chosen`
    picks (by directory). A checkout is known by its volumes' labels, which tie its
    directory to its identity; no build can use what a gone checkout left."""
    host = socket.gethostname()
    said: list[str] = []
    identities: dict[str, str] = {}
    for volume in engine.volumes(CHECKOUT_LABEL):
        checkout = volume.labels.get(CHECKOUT_LABEL, "")
        if volume.labels.get(HOST_LABEL) != host or not checkout or not chosen(checkout):
            continue
        identities[volume.labels.get(PROJECT_LABEL, "")] = checkout
        if dry_run or engine.remove_volume(volume.name):
            said.append(f"volume {volume.name} of {checkout}, which is gone")
    prefixes = {stage_prefix(i): c for i, c in identities.items() if i}
    for found in engine.images() if prefixes else []:
        for tag in found.tags:
            owner = next((c for p, c in prefixes.items() if tag.startswith(p)), None)
            if owner is not None and (dry_run or engine.remove_image(tag)):
                said.append(f"stage {tag} of {owner}, which is gone")
    return said
