"""Which images must be built, from which stage, and why: fresh, stale or missing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .engines import Engine
from .fingerprint import Manifest, all_changes, image_manifest
from .names import (
    FINGERPRINT_LABEL,
    shared_stage_tag,
    stage_fingerprint,
    stage_prefix,
    stage_tag,
)
from .project import Project, ResolvedImage
from .registry import Manifest as RegistryManifest
from .registry import Reference, Registry, RegistryError
from .spec import names_a_host
from .state import LastBuild


@dataclass(frozen=True)
class InRegistry:
    """The image of the current fingerprint in the shared cache (`--cache-from`), or in
    its own repository under one of its immutable tags."""

    reference: str  # REPO:IMAGE-FINGERPRINT
    image_id: str  # its config's digest: the id it has once pulled
    manifest: RegistryManifest


@dataclass(frozen=True)
class ImagePlan:
    name: str
    status: str  # fresh | stale | missing
    reason: str
    first_stage: str | None
    fingerprint: str
    image_id: str | None
    cached: int = -1  # the deepest stage in the local cache, where a build resumes
    cached_tag: str = ""  # that stage's tag: the image's own, or another image's (shared)
    changes: tuple[str, ...] = ()  # every input that changed since the last build
    remote: InRegistry | None = None  # fresh in the shared cache, not in the engine

    @property
    def shown_status(self) -> str:
        return f"{self.status} (registry)" if self.remote else self.status

    def as_dict(self) -> dict[str, Any]:
        found = {"registry": self.remote.reference} if self.remote else {}
        return found | {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "first_stage": self.first_stage,
            "fingerprint": self.fingerprint,
            "image_id": self.image_id,
            "changes": list(self.changes),
        }

    @property
    def fresh(self) -> bool:
        return self.status == "fresh"


def cached_start(
    engine: Engine, project: Project, image: ResolvedImage, manifest: Manifest
) -> tuple[int, str]:
    """The index of the deepest stage this project has cached, the image's own or another
    image's of the same fingerprint (the same parent, roles and inputs), and its tag; or
    (-1, "")."""
    if not image.layered:
        return -1, ""
    others: dict[str, str] | None = None
    for index in reversed(range(len(manifest.stages) - 1)):  # the commit stage is not cached
        fingerprint = manifest.stages[index].fingerprint
        own = stage_tag(project.identity, image.slug, fingerprint)
        if engine.image(own) is not None:
            return index, own
        others = project_stages(engine, project) if others is None else others
        if fingerprint[:32] in others:
            return index, others[fingerprint[:32]]
    return -1, ""


def project_stages(engine: Engine, project: Project) -> dict[str, str]:
    """Every stage this project has cached, by fingerprint: {fingerprint: tag}."""
    prefix = stage_prefix(project.identity)
    return {
        stage_fingerprint(tag): tag
        for found in engine.images()
        for tag in found.tags
        if tag.startswith(prefix)
    }


def in_registry(
    engine: Engine, repository: str, image: ResolvedImage, fingerprint: str
) -> InRegistry | None:
    """The image of this fingerprint in a shared cache, or None (also when the registry
    cannot say: the cache only saves time)."""
    reference = shared_stage_tag(repository, image.slug, fingerprint)
    where = Reference.parse(reference)
    try:
        found = Registry.of(engine, where.registry).manifest(where.repository, where.tag)
        image_id = found.config_digest if found is not None and not found.is_index else None
    except (RegistryError, ValueError):  # ValueError: not a manifest
        return None
    if found is None or image_id is None:
        return None
    return InRegistry(reference, image_id, found)


def in_own_repository(
    engine: Engine, image: ResolvedImage, fingerprint: str, tags: list[str]
) -> InRegistry | None:
    """The image of this fingerprint under one of its immutable `tags` in its own
    repository (a run of the same commit pushed it there), or None. Its config's
    fingerprint label must be this one. Only a repository that names its registry is
    asked, and a registry that cannot say is a miss (it only saves time)."""
    where = Reference.parse(f"{image.repository}:x")
    if not names_a_host(image.repository.split("/", 1)[0]):
        return None
    try:
        client = Registry.of(engine, where.registry)
        for tag in tags:
            found = client.manifest(where.repository, tag)
            if found is None or found.is_index or found.config_digest is None:
                continue
            labels = client.config(where.repository, found).get("config", {}).get("Labels")
            if (labels or {}).get(FINGERPRINT_LABEL) == fingerprint:
                return InRegistry(f"{image.repository}:{tag}", found.config_digest, found)
    except (RegistryError, ValueError):  # ValueError: not a manifest
        return None
    return None


def parent_words(image: ResolvedImage) -> str:
    if image.parent_kind == "base":
        return f"base image {image.parent}"
    return f"image {image.parent}"


def assess(
    engine: Engine,
    project: Project,
    image: ResolvedImage,
    last: LastBuild | None,
    parent_id: str,
    parent_fresh: bool = True,
    use_cache: bool = True,
    cache_from: str | None = None,
    own_tags: Callable[[str], list[str]] | None = None,
) -> tuple[ImagePlan, Manifest]:
    """The plan for one image, given its last build, its parent's current id and whether
    that parent is fresh; one the engine lacks is fresh when the shared cache `cache_from`
    has it, or (`own_tags`: its immutable tags for a fingerprint) its own repository."""
    manifest = image_manifest(project, image, parent_id)
    found, manifest = _assess(engine, project, image, last, manifest, parent_fresh, use_cache)
    if found.fresh or not parent_fresh or not use_cache:
        return found, manifest
    remote = None
    if cache_from is not None:
        remote = in_registry(engine, cache_from, image, manifest.fingerprint)
    if remote is None and own_tags is not None:
        tags = own_tags(manifest.fingerprint)
        remote = in_own_repository(engine, image, manifest.fingerprint, tags)
    if remote is None:
        return found, manifest
    why = f"in {remote.reference}"
    fresh = ImagePlan(
        image.name, "fresh", why, None, manifest.fingerprint, remote.image_id, remote=remote
    )
    return fresh, manifest


def _assess(
    engine: Engine,
    project: Project,
    image: ResolvedImage,
    last: LastBuild | None,
    manifest: Manifest,
    parent_fresh: bool,
    use_cache: bool,
) -> tuple[ImagePlan, Manifest]:

    def result(
        status: str, reason: str, first: str | None, changes: tuple[str, ...] = ()
    ) -> tuple[ImagePlan, Manifest]:
        current = last.image_id if last else None
        start, tag = -1, ""
        if first is not None and use_cache and parent_fresh:
            # What the build will run first: after the deepest cached stage, if any.
            start, tag = cached_start(engine, project, image, manifest)
        if first is not None:
            first = manifest.stages[start + 1].name
        found = ImagePlan(
            image.name, status, reason, first, manifest.fingerprint, current, start, tag, changes
        )
        return found, manifest

    first_stage = manifest.stages[0].name
    if last is None:
        return result("missing", "never built", first_stage)
    if engine.image(last.image_id) is None:
        return result("missing", "its last image is gone from the Docker engine", first_stage)
    changes = tuple(all_changes(last.manifest, manifest, parent_words(image)))
    if not parent_fresh:
        why = f"{image.parent} must be rebuilt first"
        return result("stale", why, first_stage, (why, *changes))
    if not changes:
        return result("fresh", "nothing changed", None)
    return result("stale", changes[0], first_stage, changes)


OwnTags = Callable[[ResolvedImage, str], list[str]]  # an image's immutable tags, by fingerprint


def plan_images(
    engine: Engine,
    project: Project,
    names: list[str],
    cache_from: str | None = None,
    own_tags: OwnTags | None = None,
) -> list[ImagePlan]:
    """The plan for the named images and their parents, in build order; builds nothing.
    With `cache_from`, an image the engine lacks is fresh when that shared cache has it;
    with `own_tags`, also when its own repository has it under one of those tags."""
    plans: dict[str, ImagePlan] = {}
    for name in project.select(names):
        image = project.images[name]
        if image.parent_kind == "image":
            parent_plan = plans[image.parent]
            parent_id = parent_plan.image_id or "unbuilt"
            parent_fresh = parent_plan.fresh
        else:
            reference = project.parent_reference(image)
            found = engine.image(reference)
            parent_id = found.id if found else f"absent {reference}"
            parent_fresh = True
        last = LastBuild.read(project, image)
        mine = (lambda fp, image=image: own_tags(image, fp)) if own_tags else None
        plans[name], _ = assess(
            engine, project, image, last, parent_id, parent_fresh, True, cache_from, mine
        )
    return list(plans.values())
