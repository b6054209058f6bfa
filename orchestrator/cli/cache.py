"""The `rolecast cache` commands: list and prune the stage cache."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import Commands, _project, app, guarded, out, table
from .options import ExtraVarsOption

cache_app = typer.Typer(
    cls=Commands,
    help="The stage cache: one image per role stage, rolecast-cache/PROJECT/IMAGE:FINGERPRINT.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls(
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
    extra_vars: ExtraVarsOption = None,
) -> None:
    """List cached stage images with their stage, size and age."""
    import datetime as dt

    from ..build.cache import cached_stages
    from ..engines import connect
    from ..progress import size_text

    project = _project(extra_vars)
    stages = guarded(lambda: cached_stages(connect(), project))
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in stages], indent=2))
        return
    now = dt.datetime.now(dt.UTC)
    listing = table(("IMAGE", "STAGE", "FINGERPRINT", "SIZE", "AGE", "CURRENT"))
    for s in stages:
        age = now - s.created
        age_text = (
            f"{age.days}d" if age.days else f"{age.seconds // 3600}h{age.seconds // 60 % 60:02d}m"
        )
        listing.add_row(
            s.image,
            s.stage,
            s.reference.rsplit(":", 1)[1][:12],
            size_text(s.size),
            age_text,
            "yes" if s.current else "",
        )
    out.print(listing)


@cache_app.command("prune")
def cache_prune(
    keep: Annotated[
        int, typer.Option("--keep", min=0, metavar="N", help="Older stages to keep per image.")
    ] = 0,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", metavar="", help="Say what would be removed; remove nothing."),
    ] = False,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            metavar="",
            help="Also remove the project's apt cache volumes, and the volumes and "
            "stages of checkouts that are gone.",
        ),
    ] = False,
    extra_vars: ExtraVarsOption = None,
) -> None:
    """Remove cached stages that no current fingerprint uses (but the newest --keep)."""
    from ..build.cache import prune, prune_apt_volumes
    from ..engines import connect
    from ..progress import size_text

    project = _project(extra_vars)
    removed, kept = guarded(lambda: prune(connect(), project, keep, dry_run))
    verb = "would remove" if dry_run else "removed"
    for stage in removed:
        out.print(f"{verb} {stage.reference} ({stage.stage})", markup=False, highlight=False)
    if volumes:
        for what in guarded(lambda: prune_apt_volumes(connect(), project, dry_run)):
            out.print(f"{verb} {what}", markup=False, highlight=False)
    total = sum(s.size for s in removed)
    out.print(
        f"{verb} {len(removed)} stage images (up to {size_text(total)}); kept {len(kept)}",
        markup=False,
        highlight=False,
    )
