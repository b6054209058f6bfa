"""One image's build, from its inputs to its result. Each phase is a function named as the
progress shows it, and hands what it found to the next:

    lock and recover -> parent -> plan -> (fresh: keep, in fresh.py) -> stages -> inputs -> packer
    -> gates -> record -> share stages -> push
"""

from __future__ import annotations

import time

from ..errors import BuildFailedError
from ..fingerprint import Manifest
from ..plan import ImagePlan, assess
from ..project import ResolvedImage
from ..report import PARENT, START, ImageResult, Outcome, Phase
from ..state import LastBuild
from . import stages
from .context import Context
from .fresh import keep_fresh, keep_remote, pull_remote_parent
from .inputs import BuildInputs, prepare
from .packer import PackerRun, run_packer
from .parents import Parent, ensure_parent
from .push import push
from .recovery import Held, drop_if_unused, expect_candidate, image_lock, recover
from .verify import gated, run_gates


def build_image(ctx: Context, name: str, parent_built: ImageResult | None) -> ImageResult:
    """One image, while holding its lock: what a killed build of it left is cleaned up
    first; fresh images are kept (or, fresh in the shared cache only, tagged from there);
    others resume from their deepest cached stage."""
    image = ctx.project.images[name]
    clock = ctx.clock(name)
    with image_lock(ctx, image) as lock:
        held = Held(lock.fd, tuple(recover(ctx, image)))
        last = LastBuild.read(ctx.project, image)
        clock.enter(PARENT)
        parent = find_parent(ctx, image, parent_built)
        clock.enter(START)
        forced = ctx.forced(name, image.spec_name)
        parent_id = parent.id if parent else (parent_built and parent_built.image_id) or ""
        planned, manifest = plan(ctx, image, parent_id, last, forced)
        if planned.fresh and not forced and planned.remote is not None:
            result = keep_remote(ctx, image, manifest, planned.remote, held.recovered)
        elif planned.fresh and not forced:
            result = keep_fresh(ctx, image, manifest, last, held.recovered)
        else:
            parent = parent or pull_remote_parent(ctx, image, parent_built)
            ctx.emit(name, Phase.PLANNED, f"{planned.status}: {planned.reason}")
            result = build_stale(ctx, image, manifest, planned, parent, last, held)
        result.phases = clock.stop()
        if result.record is not None:
            ctx.history.set_phases(result.record, result.phases)
        return result


def plan(
    ctx: Context, image: ResolvedImage, parent_id: str, last: LastBuild | None, forced: bool
) -> tuple[ImagePlan, Manifest]:
    """Fresh, stale or missing, against the last build (read once, at the start), or fresh
    in the shared cache (`--cache-from`) or, when pushing, in its own repository under
    one of its immutable tags; a forced image uses no cached stage."""
    pushing = ctx.pushes(image)
    return assess(
        ctx.engine,
        ctx.project,
        image,
        last,
        parent_id,
        use_cache=not forced,
        cache_from=ctx.options.cache_from,
        own_tags=(lambda fp: ctx.rules.immutable(image, fp)) if pushing else None,
    )


def find_parent(ctx: Context, image: ResolvedImage, built: ImageResult | None) -> Parent | None:
    """The parent, present in the engine; None for a parent of this run that is fresh in
    the shared cache only (its id, `built.image_id`, is its config's digest)."""
    if (
        built is not None
        and built.result == Outcome.FRESH
        and built.image_id
        and ctx.engine.image(built.image_id) is None
    ):
        return None
    return ensure_parent(ctx, image, built)


def build_stale(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    planned: ImagePlan,
    parent: Parent,
    last: LastBuild | None,
    held: Held,
) -> ImageResult:
    """Resume from the deepest cached stage, run Packer, pass the gates, record the image."""
    started = time.monotonic()
    start = stages.find_start(ctx, image, manifest, parent.reference, planned)
    stages.ready_apt_cache(ctx, image)
    inputs = prepare(ctx, image, manifest, start, parent.config, gated(ctx, image))
    record = ctx.history.start(image.name, manifest.fingerprint, start.reused)
    packer = PackerRun()

    def finish(result: str, error: str | None = None, image_id: str | None = None) -> None:
        ctx.history.finish(
            record,
            result,
            stages_run=start.to_run if result == Outcome.BUILT else [],
            roles_run=packer.roles_run,
            image_id=image_id,
            tags=[f"{image.repository}:{t}" for t in inputs.final_tags] if image_id else [],
            log=ctx.rel(inputs.log),
            error=error,
        )

    if inputs.candidate is not None:
        expect_candidate(ctx, image)
    try:
        run_packer(ctx, image, inputs, held, packer)
        if inputs.candidate is not None and packer.state.image_id:
            packer.state.notes += run_gates(ctx, image, inputs, packer.state.image_id)
    except BuildFailedError as exc:
        finish(Outcome.FAILED, str(exc))
        raise
    except BaseException:
        finish(Outcome.INTERRUPTED, "interrupted")
        raise
    result = result_of(ctx, image, manifest, start, inputs, packer, held, started)
    record_build(ctx, image, manifest, last, inputs, result)
    finish(Outcome.BUILT, image_id=result.image_id)
    result.record = record
    result.pushed = push(ctx, image, manifest, record)
    ctx.emit(
        image.name, Phase.DONE, f"{(result.image_id or '')[7:19] or '?'} {' '.join(result.tags)}"
    )
    return result


def result_of(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    start: stages.Start,
    inputs: BuildInputs,
    packer: PackerRun,
    held: Held,
    started: float,
) -> ImageResult:
    """The built image's result; its stages shared when `--cache-to` asks."""
    notes = packer.state.notes
    if start.reused:
        notes.append(f"cache: reused {', '.join(start.reused)}")
    if start.pulled:
        notes.append(f"cache: pulled {', '.join(start.pulled)} from {ctx.options.cache_from}")
    image_id = packer.state.image_id
    stages.share(ctx, image, manifest, notes, image_id)
    found = ctx.engine.image(image_id) if image_id else None
    return ImageResult(
        name=image.name,
        result=Outcome.BUILT,
        tags=[f"{image.repository}:{t}" for t in inputs.final_tags],
        image_id=image_id,
        size=found.size if found else None,
        seconds=time.monotonic() - started,
        log=ctx.rel(inputs.log),
        connection=inputs.inp.connection,
        notes=[*held.recovered, *notes],
        fingerprint=manifest.fingerprint,
        stages_run=start.to_run,
        stages_reused=start.reused,
        stages_pulled=start.pulled,
    )


def record_build(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    last: LastBuild | None,
    inputs: BuildInputs,
    result: ImageResult,
) -> None:
    """Write the state of this build (once), and drop what it replaced if nothing uses it."""
    if result.image_id:
        LastBuild(result.image_id, result.tags, manifest).write(ctx.project, image)
        if last is not None and last.image_id != result.image_id:
            drop_if_unused(ctx, last.image_id)
    for old in inputs.replaced:
        drop_if_unused(ctx, old)
