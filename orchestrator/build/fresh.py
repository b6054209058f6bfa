"""Images with nothing to build: fresh here (their tags applied again) or fresh in a
registry (the shared cache of `--cache-from`, or, when pushing, the image's own
repository: their tags copied in the registry, or the image pulled); and a parent fresh
in the shared cache only, pulled because a child must be built on it."""

from __future__ import annotations

from ..engines import EngineError
from ..errors import BuildFailedError
from ..fingerprint import Manifest
from ..names import shared_stage_tag
from ..plan import InRegistry
from ..project import ResolvedImage
from ..publish import copy_image, credentials
from ..report import PUSH, ImageResult, Outcome, Phase
from ..state import LastBuild
from . import stages
from .context import Context
from .parents import Parent, ensure_parent
from .push import push


def keep_fresh(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    last: LastBuild | None,
    recovered: tuple[str, ...],
) -> ImageResult:
    """Nothing changed: no container starts; the tags are (re)applied to the last image."""
    assert last is not None
    tags = ctx.rules.for_image(image, manifest.fingerprint)
    full_tags = [f"{image.repository}:{t}" for t in tags]
    found = ctx.engine.image(last.image_id)
    for tag in full_tags:
        if found is None or tag not in found.tags:  # a tag on it already needs no call
            ctx.engine.tag(last.image_id, tag)
    names = [s.name for s in manifest.stages]
    record = ctx.history.start(image.name, manifest.fingerprint, names)
    ctx.history.finish(record, Outcome.FRESH, image_id=last.image_id, tags=full_tags)
    pushed = push(ctx, image, manifest, record)
    notes = [*recovered, "fresh: nothing changed since the last build"]
    stages.share(ctx, image, manifest, notes, last.image_id)
    ctx.emit(image.name, Phase.DONE, f"fresh, {last.image_id[7:19]} {' '.join(tags)}")
    size = found.size if found else None
    return fresh_result(image, manifest, last.image_id, full_tags, notes, pushed, record, size)


def keep_remote(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    remote: InRegistry,
    recovered: tuple[str, ...],
) -> ImageResult:
    """Fresh in the shared cache: with --push, its tags are added in the registry itself
    (nothing pulled, nothing run); without, only the image is pulled and tagged."""
    tags = [f"{image.repository}:{t}" for t in ctx.rules.for_image(image, manifest.fingerprint)]
    names = [s.name for s in manifest.stages]
    record = ctx.history.start(image.name, manifest.fingerprint, names)
    try:
        image_id, copied = tag_remote(ctx, image, manifest, remote, tags, record)
    except BuildFailedError as exc:
        ctx.history.finish(record, Outcome.FAILED, error=str(exc))
        raise
    ctx.history.finish(record, Outcome.FRESH, image_id=image_id, tags=tags)
    LastBuild(image_id, tags, manifest).write(ctx.project, image)
    ctx.emit(image.name, Phase.DONE, f"fresh (registry), {image_id[7:19]}")
    notes = [*recovered, f"fresh (registry): {remote.reference}"]
    found = ctx.engine.image(image_id)
    size = found.size if found else None
    return fresh_result(image, manifest, image_id, tags, notes, copied, record, size)


def fresh_result(
    image: ResolvedImage,
    manifest: Manifest,
    image_id: str,
    tags: list[str],
    notes: list[str],
    pushed: list[dict[str, str]],
    record: int,
    size: int | None,
) -> ImageResult:
    return ImageResult(
        name=image.name,
        result=Outcome.FRESH,
        tags=tags,
        image_id=image_id,
        size=size,
        notes=notes,
        fingerprint=manifest.fingerprint,
        stages_reused=[s.name for s in manifest.stages],
        pushed=pushed,
        record=record,
    )


def tag_remote(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    remote: InRegistry,
    tags: list[str],
    record: int,
) -> tuple[str, list[dict[str, str]]]:
    """The tags of an image fresh in the shared cache: copied in the registry (--push), or
    on the image pulled from it; its id and what was pushed."""
    pushing = ctx.pushes(image)
    copied = None
    if pushing:
        ctx.clocks[image.name].enter(PUSH)
        copied = copy_image(
            ctx.engine, image, ctx.rules, manifest.fingerprint, remote.reference, ctx.on_event
        )
    if copied is not None:
        ctx.history.set_pushed(record, copied)
        return remote.image_id, copied
    # Not pushing, or the cache is in another registry than the image: pull it.
    image_id = fetch_remote(ctx, image, remote.reference, tags)
    return image_id, push(ctx, image, manifest, record) if pushing else []


def fetch_remote(ctx: Context, image: ResolvedImage, source: str, tags: list[str]) -> str:
    """Pull an image of the shared cache, tag it with `tags`, drop the cache's tag; its id."""
    ctx.emit(image.name, Phase.CACHE, f"pulling {source}")
    try:
        ctx.engine.pull(source, credentials())
        found = ctx.engine.image(source)
        if found is None:
            raise EngineError("not found after the pull")
        for tag in tags:
            ctx.engine.tag(found.id, tag)
    except EngineError as exc:
        raise BuildFailedError(f"image {image.name}: could not pull {source}: {exc}") from None
    if source not in tags:  # the shared cache's name, not one of the image's own tags
        ctx.engine.remove_image(source)
    return found.id


def pull_remote_parent(ctx: Context, image: ResolvedImage, built: ImageResult | None) -> Parent:
    """A parent fresh in the shared cache only, pulled (and tagged as its own) because its
    child must be built on it."""
    assert built is not None and built.fingerprint and ctx.options.cache_from
    parent = ctx.project.images[image.parent]
    source = shared_stage_tag(ctx.options.cache_from, parent.slug, built.fingerprint)
    fetch_remote(ctx, image, source, built.tags)
    return ensure_parent(ctx, image, built)
