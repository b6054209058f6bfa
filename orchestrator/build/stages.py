"""The stage cache as a build uses it: one image per role stage, in the engine as
`rolecast-cache/PROJECT/IMAGE:FINGERPRINT` and in a shared registry (`--cache-from`,
`--cache-to`), where a build resumes; and the apt cache volumes it mounts. What
`rolecast cache` lists and removes is in `cache.py`."""

from __future__ import annotations

from dataclasses import dataclass

from ..engines import EngineError
from ..errors import BuildFailedError
from ..fingerprint import Manifest
from ..names import (
    apt_volumes,
    checkout_labels,
    shared_stage_tag,
    stage_tag,
)
from ..plan import ImagePlan
from ..project import Project, ResolvedImage
from ..publish import credentials, share_stages
from ..registry import registry_holds
from ..report import Phase
from .context import Context


@dataclass(frozen=True)
class Start:
    """Where a build resumes: after stage `index` (-1: from the parent image)."""

    index: int
    reused: list[str]
    pulled: list[str]
    to_run: list[str]
    source: str  # the image the build container starts from


def stage_at(project: Project, image: ResolvedImage, manifest: Manifest, index: int) -> str:
    return stage_tag(project.identity, image.slug, manifest.stages[index].fingerprint)


def find_start(
    ctx: Context, image: ResolvedImage, manifest: Manifest, parent: str, planned: ImagePlan
) -> Start:
    """The deepest stage this project has (as the plan found it), or a deeper one the
    shared cache has (then pulled)."""
    start, use_cache = planned.cached, not ctx.forced(image.name, image.spec_name)
    pulled: list[str] = []
    if use_cache and ctx.options.cache_from and image.layered:
        start, pulled = pull_stages(ctx, image, manifest, start)
    names = [s.name for s in manifest.stages]
    reused, to_run = names[: start + 1], names[start + 1 :]
    if reused:
        ctx.emit(
            image.name, Phase.CACHE, f"reusing {', '.join(reused)}; running {', '.join(to_run)}"
        )
    source = stage_at(ctx.project, image, manifest, start) if start >= 0 else parent
    if start >= 0 and not pulled and planned.cached_tag != source:
        adopt_stage(ctx, image, manifest, start, planned.cached_tag)
    return Start(start, reused, pulled, to_run, source)


def adopt_stage(
    ctx: Context, image: ResolvedImage, manifest: Manifest, index: int, other: str
) -> None:
    """Another image of the project has this stage (same parent, roles and inputs): it
    becomes this image's too, by a tag, and the build resumes after it."""
    try:
        ctx.engine.tag(other, stage_at(ctx.project, image, manifest, index))
    except EngineError as exc:  # removed since the plan (a prune): cannot resume there
        raise BuildFailedError(
            f"image {image.name}: the stage {other} it shares is gone ({exc}); "
            "build again (the plan will not find it)"
        ) from None
    ctx.emit(image.name, Phase.CACHE, f"{manifest.stages[index].name}: shared with {other}")


def pull_stages(
    ctx: Context, image: ResolvedImage, manifest: Manifest, start: int
) -> tuple[int, list[str]]:
    """The deepest stage beyond `start` that the shared cache has, pulled and tagged as a
    local stage; (new start, names of the stages it brings)."""
    assert ctx.options.cache_from is not None
    auth = credentials()
    for index in reversed(range(start + 1, len(manifest.stages) - 1)):
        fingerprint = manifest.stages[index].fingerprint
        remote = shared_stage_tag(ctx.options.cache_from, image.slug, fingerprint)
        if not registry_holds(ctx.engine, remote, auth):
            continue  # not there (or the registry cannot say): the next stage down
        ctx.emit(image.name, Phase.CACHE, f"pulling {remote}")
        try:
            ctx.engine.pull(remote, auth)
            ctx.engine.tag(remote, stage_at(ctx.project, image, manifest, index))
        except EngineError as exc:  # the cache only saves time
            ctx.emit(image.name, Phase.NOTE, f"cache: could not pull {remote}: {exc}")
            return start, []
        return index, [s.name for s in manifest.stages[start + 1 : index + 1]]
    return start, []


def share(
    ctx: Context, image: ResolvedImage, manifest: Manifest, notes: list[str], image_id: str | None
) -> None:
    """Send every stage of the current fingerprints that is here, and the image itself
    (`REPO:IMAGE-FINGERPRINT` of its final fingerprint), to the shared cache: another
    runner finds the image there without building or pulling a stage. A failure is a
    note, not a failed build: the cache only saves time."""
    repository = ctx.options.cache_to
    if repository is None:
        return
    stages = []
    for index, stage in enumerate(manifest.stages[:-1] if image.layered else []):
        local = stage_at(ctx.project, image, manifest, index)
        if ctx.engine.image(local) is not None:
            remote = shared_stage_tag(repository, image.slug, stage.fingerprint)
            stages.append((local, remote, stage.name))
    if image_id is not None:
        remote = shared_stage_tag(repository, image.slug, manifest.fingerprint)
        stages.append((image_id, remote, "the image"))
    sent, failure = share_stages(
        ctx.engine, stages, say=lambda text: ctx.emit(image.name, Phase.PUSH, text)
    )
    if failure is not None:
        notes.append(f"cache: stages not shared: {failure}")
    elif sent:
        notes.append(f"cache: shared {', '.join(sent)} to {repository}")


def ready_apt_cache(ctx: Context, image: ResolvedImage) -> None:
    """The image's apt cache volumes, made before Packer mounts them, labelled with their
    checkout: `cache prune --volumes` finds those of checkouts that are gone."""
    if not image.spec.config.cleanup:
        return  # apt's files are committed with the image: no volumes
    for name in apt_volumes(ctx.identity, image.slug):
        try:
            ctx.engine.create_volume(name, checkout_labels(ctx.root))
        except EngineError as exc:  # the build still gets it, unlabelled, from the engine
            ctx.emit(image.name, Phase.NOTE, f"cache: {exc}")
