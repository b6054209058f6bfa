"""The last phase of a build: the image's tags pushed when asked, immutable tags first."""

from __future__ import annotations

from ..fingerprint import Manifest
from ..project import ResolvedImage
from ..publish import publish_image
from ..report import PUSH
from .context import Context


def push(
    ctx: Context, image: ResolvedImage, manifest: Manifest, record: int
) -> list[dict[str, str]]:
    """Push the image's tags when asked (--push, `push: true`); moving tags last."""
    if not ctx.pushes(image):
        return []
    ctx.clocks[image.name].enter(PUSH)
    pushed = publish_image(ctx.engine, image, ctx.rules, manifest.fingerprint, ctx.on_event)
    if pushed:
        ctx.history.set_pushed(record, pushed)
    return pushed
