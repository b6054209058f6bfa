"""Locks and leftovers: one build of an image at a time, and what a killed build left
(its container, an unchecked candidate, a `running` record) cleaned up by the next."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .. import render
from ..engines import EngineError
from ..locks import ProjectLock
from ..names import candidate_repository, container_prefix
from ..project import ResolvedImage
from ..report import Outcome, Phase
from .context import Context


@dataclass(frozen=True)
class Held:
    """What a build holds of its image: the lock's descriptor (its Packer inherits it) and
    the notes on what a killed earlier build had left and was cleaned up."""

    lock_fd: int | None = None
    recovered: tuple[str, ...] = ()


def image_lock(ctx: Context, image: ResolvedImage) -> ProjectLock:
    return ctx.lock(f"image-{image.slug}", f"image {image.name}", image.name)


def recover(ctx: Context, image: ResolvedImage) -> list[str]:
    """Under the image's lock no other build of it runs: a build container of it, a
    candidate tag or an unfinished history record is what a killed build left."""
    notes: list[str] = []
    engine = ctx.engine
    prefix = container_prefix(ctx.identity, image.slug)
    unfinished = ctx.history.unfinished(image.name)
    try:
        # A killed build's container and candidate have its unfinished record; the run's
        # one listing of the project's finds the rest (those whose removal failed).
        if unfinished or any(name.startswith(prefix) for name in ctx.containers_left):
            for container in engine.containers(name_prefix=prefix):
                engine.remove_container(container.id)
                notes.append(
                    f"removed container {container.id[:12]} left by build "
                    f"{container.name[len(prefix) :]}, which did not finish"
                )
        if unfinished or candidate_marker(ctx, image).exists():
            for found in engine.images(candidate_repository(ctx.identity, image.slug)):
                for tag in found.tags:
                    engine.remove_image(tag)
                    notes.append(f"removed the unchecked candidate {tag} of a killed build")
            candidate_marker(ctx, image).unlink(missing_ok=True)
    except EngineError as exc:
        notes.append(f"could not look for containers of killed builds: {exc}")
    for record in unfinished:
        when = dt.datetime.fromtimestamp(record.started, dt.UTC).strftime("%H:%M:%S")
        ctx.history.finish(
            record.id,
            Outcome.INTERRUPTED,
            error=f"rolecast (pid {record.pid}) stopped before the build finished",
        )
        notes.append(
            f"the build started at {when} UTC by pid {record.pid} did not finish; "
            "its record now says interrupted"
        )
    for note in notes:
        ctx.emit(image.name, Phase.RECOVERED, note)
    return notes


def candidate_marker(ctx: Context, image: ResolvedImage) -> Path:
    """Present from before a gated build commits its candidate until the candidate is
    removed: a build killed in between, or whose removal failed, leaves it for the next
    build of the image, which then looks for candidates (listing images costs the engine a
    walk over all of them, so a build that finds no marker does not)."""
    return ctx.state_dir / "candidates" / image.slug


def expect_candidate(ctx: Context, image: ResolvedImage) -> None:
    marker = candidate_marker(ctx, image)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def drop_candidate(ctx: Context, image: ResolvedImage, candidate: str) -> None:
    """The candidate's tag goes, and with it the marker (kept when the engine refused)."""
    ctx.engine.remove_image(candidate)
    candidate_marker(ctx, image).unlink(missing_ok=True)


def remove_leftovers(ctx: Context, build_id: str, untagged_commit: str | None = None) -> None:
    """No container of this build survives it; an untagged commit of a failed build neither."""
    engine = ctx.engine
    try:
        for container in engine.containers(label=f"{render.BUILD_LABEL}={build_id}"):
            engine.remove_container(container.id)
    except EngineError:
        pass
    if untagged_commit:
        engine.remove_image(untagged_commit)


def drop_if_unused(ctx: Context, image_id: str) -> None:
    """Remove an image a rebuild replaced, when no tag, container or child image uses
    it; the engine refuses otherwise, and that refusal is the check."""
    try:
        found = ctx.engine.image(image_id)
    except EngineError:
        return
    if found is not None and not found.tags:
        ctx.engine.remove_image(image_id)
