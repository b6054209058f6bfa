"""The image a build starts from: its parent image of this file, a base (made when
missing), or a registry image (pulled when missing)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import render
from ..bases import make_base
from ..engines import EngineError, ImageInfo
from ..errors import BuildFailedError
from ..project import Project, ResolvedImage
from ..report import ImageResult, Phase
from ..state import LastBuild
from ..tags import TagRules
from .context import Context


@dataclass(frozen=True)
class Parent:
    reference: str
    id: str
    config: render.ParentConfig


def parent_config(info: ImageInfo) -> render.ParentConfig:
    """What Packer's commit would otherwise clobber of the parent's config."""
    return render.ParentConfig(entrypoint=info.entrypoint, cmd=info.cmd, user=info.user)


def parent_reference(project: Project, rules: TagRules, image: ResolvedImage) -> str:
    """The reference a build of `image` starts from, its parent's first tag as the last
    build of the parent resolved it."""
    if image.parent_kind == "image":
        parent = project.images[image.parent]
        last = LastBuild.read(project, parent)
        return (
            f"{parent.repository}:{rules.for_image(parent, last.fingerprint if last else None)[0]}"
        )
    return project.parent_reference(image)


def ensure_parent(ctx: Context, image: ResolvedImage, built: ImageResult | None) -> Parent:
    """The parent, present in the engine: `built` is the parent's result in this run."""
    if built is not None and built.tags:
        reference = built.tags[0]
    else:
        reference = parent_reference(ctx.project, ctx.rules, image)
    if image.parent_kind == "base":
        make_missing_base(ctx, image, reference)
    found = ctx.engine.image(reference)
    if found is None and image.parent_kind == "image":
        raise BuildFailedError(
            f"image {image.name}: its parent {reference} does not exist; "
            f"build {image.parent} first (rolecast build {image.parent})"
        )
    if found is None:
        found = pull_parent(ctx, image, reference)
    return Parent(reference, found.id, parent_config(found))


def make_missing_base(ctx: Context, image: ResolvedImage, reference: str) -> None:
    """Images built in parallel share their base: it is made once, under its lock."""
    name = image.parent
    with ctx.bases_lock, ctx.lock(f"base-{name}", f"base {name}", image.name):
        if name not in ctx.bases_done:
            make_base(
                ctx.engine,
                name,
                ctx.project.bases[name],
                reference,
                say=lambda text: ctx.emit(image.name, Phase.BASE_IMAGE, text),
                log_file=ctx.bases_log,
            )
            ctx.bases_done.add(name)


def pull_parent(ctx: Context, image: ResolvedImage, reference: str) -> ImageInfo:
    ctx.emit(image.name, Phase.PULLING_PARENT, reference)
    try:
        ctx.engine.pull(reference)
        found = ctx.engine.image(reference)
    except EngineError as exc:
        reason = str(exc)
        found = None
    else:
        reason = "not found after the pull"
    if found is None:
        raise BuildFailedError(
            f"image {image.name}: base image {reference} is not present and cannot be "
            f"pulled ({reason[:200]}); load it with `docker load`, or define it "
            "under `bases:` to make it with debootstrap"
        )
    return found
