"""Commands that look at the project: validate, ls, init, plan, history, logs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ..plan import ImagePlan
    from ..project import Project, ResolvedImage

from .app import _checked_project, _fail, _project, app, err, guarded, out, state, table
from .options import (
    CacheFromOption,
    ExtraVarsOption,
    GitlabCacheToOption,
    GitlabIncludeOption,
    VaultFileOption,
    VaultIdOption,
    VersionOption,
    image_names,
)


@app.command()
def validate(
    vault_password_file: VaultFileOption = None,
    vault_id: VaultIdOption = None,
) -> None:
    """Check the spec and everything its images read (roles: tasks, handlers, vars, defaults,
    meta, templates; playbooks; inventories with group_vars and host_vars; tag templates),
    as Ansible reads them; exit 2 on a problem, each one line `FILE:LINE:COL: message`."""
    from ..build import vault_arguments

    secrets = guarded(lambda: vault_arguments(vault_password_file or [], vault_id or []))
    project = _checked_project(secrets)
    images = len(project.images)
    out.print(
        f"{project.loaded.doc.file}: ok ({images} image{'s' if images != 1 else ''}: "
        f"{', '.join(project.order)})",
        markup=False,
        highlight=False,
    )
    versioned = _versioned(project)
    if versioned and not os.environ.get("ROLECAST_VERSION"):
        err.print(
            f"note: the tags of {', '.join(versioned)} use {{{{ version }}}}: build, render "
            "and push need --version (or ROLECAST_VERSION)",
            markup=False,
            highlight=False,
        )


def _versioned(project: Project) -> list[str]:
    """Images whose tag templates use `{{ version }}`, by spec name."""
    from ..tagvars import uses

    names = [
        i.spec_name for i in project.images.values() if any(uses("version", t) for t in i.tags)
    ]
    return list(dict.fromkeys(names))


def _image_rows(project: Project) -> list[dict[str, Any]]:
    rows = []
    for name in project.order:
        image = project.images[name]
        rows.append(
            {
                "name": name,
                "repository": image.repository,
                "from": image.parent,
                "from_kind": image.parent_kind,
                "from_reference": project.parent_reference(image),
                "roles": [r.role for r in image.roles],
                "roles_applied": [r.name for r in image.role_closure],
                "playbook": str(image.playbook.relative_to(project.root.resolve()))
                if image.playbook
                else None,
                "groups": list(image.spec.groups),
                "tags": [f"{image.repository}:{t}" for t in image.tags],
                "push": image.spec.push,
            }
        )
    return rows


@app.command("ls")
def list_images(
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print JSON for pipelines.")
    ] = False,
) -> None:
    """List the images of the spec in build order: from, roles, tags."""
    rows = _image_rows(_project())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    listing = table(("IMAGE", "FROM", "ROLES", "TAGS"))
    for row in rows:
        roles = ", ".join(row["roles"]) or (row["playbook"] or "-")
        listing.add_row(row["name"], row["from"], roles, " ".join(row["tags"]))
    out.print(listing)


@app.command()
def init(
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Overwrite an existing spec.")
    ] = False,
) -> None:
    """Write a starter rolecast.yml listing the roles found under roles/."""
    from ..starter import write_starter

    # A new project starts here, not in a project found further up.
    root = Path(".") if state.found_upward else state.root
    target = guarded(lambda: write_starter(root, state.file, force))
    out.print(f"wrote {target}; check it with `rolecast validate`", markup=False)


@app.command("plan")
def plan_command(
    images: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IMAGE",
            autocompletion=image_names,
            help="Images to plan (default: all), with parents.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print JSON for pipelines.")
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table, json, github-matrix, gitlab-ci, mermaid or dot.",
            metavar="FORMAT",
        ),
    ] = "table",
    extra_vars: ExtraVarsOption = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", metavar="", help="List every change behind a stale image, not the first."
        ),
    ] = False,
    cache_from: CacheFromOption = None,
    push: Annotated[
        bool,
        typer.Option(
            "--push",
            metavar="",
            envvar="ROLECAST_PUSH",
            help="Plan as `build --push`: an image its own repository holds under one of "
            "its immutable tags is fresh (registry).",
        ),
    ] = False,
    version: VersionOption = None,
    cache_to: GitlabCacheToOption = None,
    gitlab_include: GitlabIncludeOption = None,
) -> None:
    """Say which images are fresh, stale or missing, from which stage, and why."""
    from ..engines import connect
    from ..errors import UsageError
    from ..plan import plan_images

    formats = ("table", "json", "github-matrix", "gitlab-ci", "mermaid", "dot")
    if output_format not in formats:
        raise _fail(UsageError(f"--format {output_format}: use {', '.join(formats)}"))
    if as_json:
        output_format = "json"
    if output_format != "gitlab-ci" and (cache_to or gitlab_include):
        flag = "--cache-to" if cache_to else "--gitlab-include"
        raise _fail(UsageError(f"{flag} is for --format gitlab-ci (the build jobs' flags)"))
    flags: list[str] = []
    if output_format == "gitlab-ci":
        flags = _build_flags(push, cache_from, cache_to, version, extra_vars)
        _check_includes(list(gitlab_include or ()))
    project = _project(extra_vars)
    if cache_from is not None:
        from ..spec import registry_problem

        problem = registry_problem(cache_from, repository=True)
        if problem is not None:
            raise _fail(UsageError(f"--cache-from: {problem}"))
    from .building import _rules

    rules = _rules(project, version)

    def own_tags(image: ResolvedImage, fingerprint: str) -> list[str]:
        return rules.immutable(image, fingerprint) if push or image.spec.push else []

    plans = guarded(
        lambda: plan_images(connect(), project, list(images or []), cache_from, own_tags)
    )
    _print_plan(project, plans, output_format, explain, flags, list(gitlab_include or ()))


def _print_plan(
    project: Project,
    plans: list[ImagePlan],
    output_format: str,
    explain: bool,
    flags: list[str],
    includes: list[str],
) -> None:
    from .. import graph

    if output_format == "json":
        typer.echo(json.dumps([p.as_dict() for p in plans], indent=2))
    elif output_format == "github-matrix":
        typer.echo(json.dumps(graph.github_matrix(project, plans), separators=(",", ":")))
    elif output_format == "gitlab-ci":
        import yaml

        pipeline = graph.gitlab_ci(project, plans, flags, includes)
        typer.echo(GITLAB_HEADER + yaml.safe_dump(pipeline, sort_keys=False, width=1000), nl=False)
    elif output_format == "mermaid":
        typer.echo(graph.mermaid(project, plans), nl=False)
    elif output_format == "dot":
        typer.echo(graph.dot(project, plans), nl=False)
    else:
        listing = table(("IMAGE", "STATUS", "FIRST STAGE", "WHY"))
        for item in plans:
            why = "\n".join(item.changes) if explain and item.changes else item.reason
            listing.add_row(item.name, item.shown_status, item.first_stage or "-", why)
        out.print(listing)


GITLAB_HEADER = (
    "# A GitLab CI child pipeline written by `rolecast plan --format gitlab-ci`:\n"
    "# one job per image to build, each after its parent's job.\n"
)


def _check_includes(paths: list[str]) -> None:
    from ..errors import UsageError

    for path in paths:
        if not Path(path.lstrip("/")).is_file():  # GitLab reads it from the repository's root
            raise _fail(
                UsageError(
                    f"--gitlab-include {path}: no such file here; give its path from the "
                    "repository's root, where the pipeline's jobs start"
                )
            )


def _build_flags(
    push: bool,
    cache_from: str | None,
    cache_to: str | None,
    version: str | None,
    extra_vars: list[str] | None,
) -> list[str]:
    """The flags of the pipeline's `rolecast build` jobs: the plan's own, so that they
    build what it planned. `-e` values would be written into the pipeline file: only
    `-e @FILE` passes."""
    from ..errors import UsageError

    flags = ["--push"] if push else []
    for flag, value in (
        ("--cache-from", cache_from),
        ("--cache-to", cache_to),
        ("--version", version),
    ):
        if value:
            flags += [flag, value]
    for given in extra_vars or ():
        if not given.startswith("@"):
            raise _fail(
                UsageError(
                    "-e with a value: --format gitlab-ci would write it into the pipeline "
                    "file; put the variables in a file of the repository and give -e @FILE, "
                    "or set them in the jobs' variables"
                )
            )
        flags += ["-e", given]
    return flags


def _recorded_names(project: Project, names: list[str]) -> list[str]:
    """The names the history records for images of the spec: a spec name means all its
    variants (`web` is web@staging and web@production). Unknown names exit 2."""
    guarded(lambda: project.select(names))
    return [
        key for key, image in project.images.items() if key in names or image.spec_name in names
    ]


@app.command("history")
def history_command(
    images: Annotated[
        list[str] | None,
        typer.Argument(metavar="IMAGE", autocompletion=image_names, help="Images (default: all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")] = False,
    limit: Annotated[
        int, typer.Option("-n", "--limit", min=1, metavar="N", help="Newest N records.")
    ] = 20,
) -> None:
    """Show the recorded builds: result, stages run and reused, duration, image, error."""
    import datetime as dt

    from ..history import History

    root, names = state.root, None
    if images:
        project = _project()
        root, names = project.root, _recorded_names(project, images)
    records = History(root).records(names, limit)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    columns = ["ID", "IMAGE", "STARTED", "DURATION", "RESULT", "RAN", "REUSED", "IMAGE ID"]
    errors = any(r.error for r in records)
    listing = table(columns + (["ERROR"] if errors else []), overflow="fold")
    for r in records:
        started = dt.datetime.fromtimestamp(r.started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        row = [
            str(r.id),
            r.image,
            started,
            f"{r.duration:.1f}s" if r.duration is not None else "-",
            r.result,
            ", ".join(r.stages_run) or "-",
            str(len(r.stages_reused)),
            r.image_id[7:19] if r.image_id else "-",
        ]
        if errors:
            # The image has its column, the log its command (`rolecast logs`).
            error = re.sub(r"; log: \S+", "", (r.error or "").removeprefix(f"image {r.image}: "))
            row.append(error or "-")
        listing.add_row(*row)
    out.print(listing)


@app.command("logs")
def logs_command(
    image: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE", autocompletion=image_names, help="The image whose build log to print."
        ),
    ],
    build: Annotated[
        int | None,
        typer.Option("--build", metavar="ID", help="That build (an ID `rolecast history` shows)."),
    ] = None,
) -> None:
    """Print the log of IMAGE's newest build (or of build ID): all that Packer and Ansible said."""
    import shutil
    import sys

    from ..history import History
    from ..logs import find_log

    project = _project()
    names = _recorded_names(project, [image])
    _, path = guarded(lambda: find_log(History(project.root), image, names, build, project.root))
    with path.open(encoding="utf-8", errors="replace") as log:
        shutil.copyfileobj(log, sys.stdout)
