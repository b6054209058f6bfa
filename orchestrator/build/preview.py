"""`rolecast render IMAGE`: the template and inputs a build would run, written and shown,
without building. Works without an engine, from what the spec says of the parent."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from .. import engines, render
from ..engines import Engine
from ..errors import ToolMissingError, UsageError
from ..fingerprint import image_manifest
from ..project import Project, ResolvedImage
from ..report import Event
from ..state import LastBuild
from ..tags import TagRules
from ..tools import packer_version
from .context import BuildOptions, Context
from .inputs import FINGERPRINT_PLACEHOLDER, play_items, render_input, write_inputs
from .parents import parent_config, parent_reference


class _Offline:
    """No engine answers: rendering goes on from the spec alone."""

    def __getattr__(self, name: str) -> Any:
        raise ToolMissingError("no Docker engine answers")


def _ignore(event: Event) -> None:
    return None


def render_image(project: Project, name: str, options: BuildOptions, rules: TagRules) -> str:
    """The template `rolecast build` would run for `name`, as text."""
    if name not in project.images:
        variants = [k for k, i in project.images.items() if i.spec_name == name]
        if variants:
            raise UsageError(f"image {name} has variants; render one: {', '.join(variants)}")
        project.select([name])  # raises the "unknown image" error
    image = project.images[name]
    reference = parent_reference(project, rules, image)
    try:
        engine: Engine = engines.connect(timeout=10)
        found = engine.image(reference)
    except ToolMissingError:
        engine, found = cast(Engine, _Offline()), None
    if found is None and image.parent_kind == "external" and not isinstance(engine, _Offline):
        raise UsageError(
            f"image {name}: cannot read the config of {reference} (not present); "
            "pull it first, so that ENTRYPOINT and CMD can be inherited"
        )
    ctx = Context(project, options, engine, _ignore, rules, packer_version() or (1, 6, 6))
    config = parent_config(found) if found else spec_parent_config(project, image)
    manifest = image_manifest(project, image, found.id if found else "unknown")
    fingerprint = manifest.fingerprint if found else FINGERPRINT_PLACEHOLDER
    last = LastBuild.read(project, image)
    last_fingerprint = last.fingerprint if last else None
    build_dir = ctx.state_dir / "build" / image.slug
    inp = render_input(
        ctx,
        image,
        build_id="render",
        parent=reference,
        parent_config=config,
        build_dir=build_dir,
        tags=rules.for_image(image, manifest.fingerprint if found else last_fingerprint),
        fingerprint=fingerprint,
    )
    items = play_items(project, image, manifest, -1)  # as a build with no cache runs it
    inp = replace(inp, stage_cache=any(isinstance(i, render.StageCommit) for i in items))
    write_inputs(project, image, inp, build_dir, items)
    return render.dumps(render.template(inp))


def spec_parent_config(project: Project, image: ResolvedImage) -> render.ParentConfig:
    """The parent's config as the spec will make it, for rendering before it is built."""
    chain = []
    current = image
    while current.parent_kind == "image":
        current = project.images[current.parent]
        chain.append(current)
    config = render.ParentConfig(cmd=["/bin/bash"])
    for parent in reversed(chain):
        c = parent.spec.config
        config = render.ParentConfig(
            entrypoint=c.entrypoint if c.entrypoint is not None else config.entrypoint,
            cmd=c.cmd if c.cmd is not None else (None if c.entrypoint else config.cmd),
            user=c.user if c.user is not None else config.user,
        )
    return config
