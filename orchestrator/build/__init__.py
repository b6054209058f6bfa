"""The engine step of the flow: building a fleet of images with Packer.

context   what one run shares (options, engine, tag rules, progress, cancel)
preflight tools and `requirements:`, once per run
fleet     the image graph: order, -j, keep-going, Ctrl-C (no Packer, no engine)
image     one image's phases, in order, each handing its result to the next:
  recovery  the image's lock; what a killed build left
  parents   the image it starts from (made or pulled when missing)
  stages    the stage cache, local and shared; `cache ls` and `cache prune`
  inputs    the template, playbook and vars Packer reads
  packer    the guarded Packer run, its output read into progress
  verify    the gates between commit and tags
preview   `rolecast render`: the inputs of a build, without building
"""

from __future__ import annotations

from collections.abc import Callable

from .. import engines
from ..errors import BuildFailedError, InterruptedBuildError
from ..project import Project
from ..report import BuildReport, ImageResult, OnEvent, Phase
from ..tags import TagRules
from . import cache, preflight
from .context import BuildOptions, Context
from .fleet import Fleet
from .image import build_image
from .inputs import vault_arguments
from .preview import render_image

__all__ = ["BuildOptions", "build_images", "render_image", "vault_arguments"]


def build_images(
    project: Project,
    options: BuildOptions,
    on_event: OnEvent,
    names: list[str],
    rules: TagRules,
    connect: Callable[[], engines.Engine] | None = None,
) -> BuildReport:
    """Build the named images (and what they are built from): parents before children,
    independent images in parallel, up to `jobs` at once. Input errors (an unknown image, a
    bad tag) are raised before any tool is asked."""
    order = project.select(names)
    for name in order:
        rules.for_image(project.images[name], None)
    project.select(list(options.force))  # an unknown name is an input error
    packer = preflight.check_tools()
    preflight.plugins(project, packer, on_event)
    engine = (connect or engines.connect)()
    ctx = Context(project, options, engine, on_event, rules, packer)
    preflight.requirements(ctx)
    cache.adopt_legacy_stages(engine, project)
    fleet = Fleet(
        order=order,
        parents={name: project.parent_in_spec(name) for name in order},
        jobs=options.jobs,
        keep_going=options.keep_going,
        cancel=ctx.cancel,
        on_skip=lambda name, why: ctx.emit(name, Phase.SKIPPED, why),
    )
    for name in order:
        ctx.emit(name, Phase.WAITING)

    def build_one(name: str, parent: ImageResult | None) -> ImageResult:
        try:
            return build_image(ctx, name, parent)
        except BuildFailedError as exc:
            ctx.emit(name, Phase.FAILED, str(exc))
            raise

    outcome = fleet.run(build_one)
    report = BuildReport(images=outcome.results, tasks=ctx.timings)
    if outcome.interrupted:
        first = next((e for e in outcome.interrupted if isinstance(e, InterruptedBuildError)), None)
        raise first or InterruptedBuildError(
            "build interrupted: no build container is left and no tag was moved"
        )
    if outcome.failures:
        error = outcome.failures[0]
        if len(outcome.failures) > 1:
            error = BuildFailedError(
                f"{len(outcome.failures)} images failed:\n"
                + "\n".join(f"  {f}" for f in outcome.failures)
            )
        error.report = report
        raise error
    return report
