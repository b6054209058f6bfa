"""The `rolecast` command line: parse, call one domain function, map errors to exit codes."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from .errors import ExitCode, InterruptedBuildError, RolecastError
from .project import Project, load_project

if TYPE_CHECKING:
    from .tags import TagRules

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Build immutable container images from Ansible roles, through Packer.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
# A pipeline's log is not 80 columns wide: tables keep whole image names there.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)

T = TypeVar("T")


class State:
    root: Path = Path(".")
    file: Path | None = None
    inventory: Path | None = None


state = State()

# Options several commands take, spelled once.
VersionOption = Annotated[
    str | None, typer.Option("--version", help="The version tag templates see.")
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", metavar="TEMPLATE", help="Another tag (template) for every image."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write the report (JSON) to FILE."),
]


def _fail(exc: RolecastError) -> typer.Exit:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        err.print(line, markup=False, highlight=False)
    return typer.Exit(exc.exit_code)


def guarded(fn: Callable[[], T]) -> T:
    """Run one domain call; a RolecastError becomes its message and exit code."""
    try:
        return fn()
    except RolecastError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(ExitCode.INTERRUPTED) from None


def _project() -> Project:
    return guarded(lambda: load_project(state.root, state.file, state.inventory))


def _version_callback(value: bool) -> None:
    if value:
        from .tools import versions

        for line in versions().lines():
            out.print(line, markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    file: Annotated[
        Path | None,
        typer.Option("-f", "--file", help="The spec file (default: rolecast.yml in the root)."),
    ] = None,
    directory: Annotated[
        Path,
        typer.Option("-C", "--directory", help="The project root (roles/, playbooks/, ...)."),
    ] = Path("."),
    inventory: Annotated[
        Path | None,
        typer.Option("-i", "--inventory", help="Use this Ansible inventory instead of the spec's."),
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Say more.")] = False,
    docker_host: Annotated[
        str | None,
        typer.Option(
            "-H",
            "--docker-host",
            help="The Docker engine to build on (unix://PATH, tcp://HOST:PORT, ssh://USER@HOST); "
            "default: DOCKER_HOST, else the local socket.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the versions of rolecast and the tools it found.",
        ),
    ] = False,
) -> None:
    if not directory.is_dir():
        err.print(f"-C {directory}: no such directory", markup=False)
        raise typer.Exit(ExitCode.INVALID_INPUT)
    if docker_host is not None:
        if not docker_host.startswith(("unix://", "tcp://", "ssh://", "fd://")):
            err.print(
                f"--docker-host {docker_host}: not an engine address; use unix:///path/to/"
                "docker.sock, tcp://HOST:2376 or ssh://USER@HOST",
                markup=False,
            )
            raise typer.Exit(ExitCode.INVALID_INPUT)
        # Everything that talks to the engine follows it: the SDK, Packer's docker
        # builder, the docker connection and the stage commits (all read DOCKER_HOST).
        os.environ["DOCKER_HOST"] = docker_host
    from .publish import take_credentials

    take_credentials()  # registry credentials leave the environment children inherit
    state.root = directory
    state.file = file
    state.inventory = inventory
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )


@app.command()
def validate() -> None:
    """Check the spec and every role, playbook and inventory it names; exit 2 on a problem."""
    project = _project()
    images = len(project.images)
    out.print(
        f"{project.loaded.doc.file}: ok ({images} image{'s' if images != 1 else ''}: "
        f"{', '.join(project.order)})",
        markup=False,
        highlight=False,
    )


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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for pipelines.")] = False,
) -> None:
    """List the images of the spec in build order: from, roles, tags."""
    rows = _image_rows(_project())
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("IMAGE", "FROM", "ROLES", "TAGS"):
        table.add_column(column)
    for row in rows:
        roles = ", ".join(row["roles"]) or (row["playbook"] or "-")
        table.add_row(row["name"], row["from"], roles, " ".join(row["tags"]))
    out.print(table)


@app.command()
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a starter rolecast.yml listing the roles found under roles/."""
    from .starter import write_starter

    target = guarded(lambda: write_starter(state.root, state.file, force))
    out.print(f"wrote {target}; check it with `rolecast validate`", markup=False)


@app.command()
def bases(
    names: Annotated[list[str] | None, typer.Argument(help="Bases to make (default: all).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Remake even when present.")] = False,
) -> None:
    """Make the spec's `bases:` images that are missing (pull, else debootstrap + import)."""
    from .bases import make_base
    from .engines import connect

    project = _project()
    known = project.bases
    wanted = names or list(known)

    def work() -> None:
        from .errors import UsageError

        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise UsageError(
                f"unknown base {', '.join(unknown)}; bases in {project.loaded.doc.file}: "
                f"{', '.join(known) or 'none'}"
            )
        engine = connect()
        for name in wanted:
            make_base(
                engine,
                name,
                known[name],
                project.base_reference(name),
                say=lambda line: out.print(line, markup=False, highlight=False),
                force=force,
            )

    guarded(work)


@app.command("render")
def render_command(
    image: Annotated[str, typer.Argument(help="The image whose Packer template to print.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file instead.")
    ] = None,
    version: VersionOption = None,
) -> None:
    """Print the Packer template (HCL2 JSON syntax) that `rolecast build` runs for IMAGE."""
    from .build import BuildOptions, render_image

    project = _project()
    rules = _rules(project, version)
    text = guarded(lambda: render_image(project, image, BuildOptions(version=version), rules))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}; run it with: packer build {output}", markup=False)


def _rules(project: Project, version: str | None, extra: list[str] | None = None) -> TagRules:
    """The tag rules of this run: the version, extra tags, the commit, the start time."""
    import datetime as dt

    from .tags import TagRules, git_info

    return TagRules(
        version=version,
        extra=tuple(extra or ()),
        git=git_info(project.root.resolve()),
        now=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", help="Override the spec: auto, mitogen, docker or proxy."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds one image's build may take.")
]
VaultFileOption = Annotated[
    list[Path] | None,
    typer.Option("--vault-password-file", help="A file (or script) with a vault password."),
]
VaultIdOption = Annotated[
    list[str] | None,
    typer.Option("--vault-id", help="A vault id, LABEL@FILE, as ansible-playbook takes it."),
]
IdempotenceOption = Annotated[
    bool,
    typer.Option("--idempotence", help="Apply the roles a second time; fail if any task changes."),
]
ForceOption = Annotated[
    list[str] | None,
    typer.Option("--force", metavar="IMAGE", help="Rebuild IMAGE from its parent, fresh or not."),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Ignore fresh images and cached stages: rebuild all.")
]
JobsOption = Annotated[
    int | None, typer.Option("-j", "--jobs", min=1, help="Images built at once (default: CPUs).")
]
PushOption = Annotated[
    bool, typer.Option("--push", help="Push every tag of each image to its registry.")
]
CacheFromOption = Annotated[
    str | None,
    typer.Option(
        "--cache-from", metavar="REPO", help="Reuse stages found in this registry repository."
    ),
]
CacheToOption = Annotated[
    str | None,
    typer.Option(
        "--cache-to", metavar="REPO", help="Push the image's stages to this registry repository."
    ),
]
KeepGoingOption = Annotated[
    bool | None,
    typer.Option(
        "--keep-going/--fail-fast",
        help="After a failure, build what does not depend on it (default in CI), "
        "or start nothing more (default elsewhere).",
    ),
]


def _check_build_flags(
    connection: str | None, cache_from: str | None, cache_to: str | None
) -> None:
    from .errors import UsageError
    from .spec import registry_problem

    if connection not in (None, "auto", "mitogen", "docker", "proxy"):
        raise _fail(UsageError(f"--connection {connection}: use auto, mitogen, docker or proxy"))
    for flag, value in (("--cache-from", cache_from), ("--cache-to", cache_to)):
        problem = registry_problem(value, repository=True) if value is not None else None
        if problem is not None:
            raise _fail(UsageError(f"{flag}: {problem}"))


@app.command()
def build(
    images: Annotated[
        list[str] | None, typer.Argument(help="Images to build (default: all), with parents.")
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="Timestamped lines instead of a live display.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Stream Ansible's output.")
    ] = False,
    as_json: JsonOption = False,
    version: VersionOption = None,
    tag: TagOption = None,
    connection: ConnectionOption = None,
    timeout: TimeoutOption = 7200.0,
    vault_password_file: VaultFileOption = None,
    vault_id: VaultIdOption = None,
    idempotence: IdempotenceOption = False,
    force: ForceOption = None,
    no_cache: NoCacheOption = False,
    jobs: JobsOption = None,
    push: PushOption = False,
    report_file: ReportOption = None,
    cache_from: CacheFromOption = None,
    cache_to: CacheToOption = None,
    keep_going: KeepGoingOption = None,
) -> None:
    """Build images with Packer: render, run, commit, tag; in dependency order."""
    import signal

    from .build import BuildOptions, build_images, vault_arguments
    from .progress import LiveProgress, PlainProgress, summary
    from .report import BuildReport

    project = _project()
    _check_build_flags(connection, cache_from, cache_to)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    options = BuildOptions(
        verbose=verbose,
        version=version,
        timeout=timeout,
        connection=connection,
        vault_arguments=guarded(lambda: vault_arguments(vault_password_file or [], vault_id or [])),
        idempotence=idempotence,
        force=tuple(force or ()),
        tags=tuple(tag or ()),
        push=push,
        cache_from=cache_from,
        cache_to=cache_to,
        no_cache=no_cache,
        jobs=jobs or os.cpu_count() or 1,
        keep_going=keep_going if keep_going is not None else bool(os.environ.get("CI")),
    )
    shown = err if as_json else out
    live = sys.stdout.isatty() and not plain and not as_json
    display = LiveProgress(shown) if live else PlainProgress(shown)
    report = BuildReport()
    failure: RolecastError | None = None
    with display:
        try:
            rules = _rules(project, version, tag)
            report = build_images(project, options, display, list(images or []), rules)
        except RolecastError as exc:
            failure = exc
            report = getattr(exc, "report", None) or report
        except KeyboardInterrupt:
            failure = InterruptedBuildError("interrupted")
    _finish(report, failure, as_json, report_file, summary)


def _finish(
    report: Any,
    failure: RolecastError | None,
    as_json: bool,
    report_file: Path | None,
    summary: Callable[[Any], list[Table]],
) -> None:
    """Print (and write) the report, then exit with the failure's code, if any."""
    payload = report.as_dict()
    payload["error"] = str(failure) if failure else None
    text = json.dumps(payload, indent=2)
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(text + "\n", encoding="utf-8")
    if as_json:
        typer.echo(text)
    elif report.images:
        for table in summary(report):
            out.print(table)
    if failure is not None:
        raise _fail(failure)


@app.command("push")
def push_command(
    images: Annotated[
        list[str] | None, typer.Argument(help="Images to push (default: all), with parents.")
    ] = None,
    version: VersionOption = None,
    tag: TagOption = None,
    as_json: JsonOption = False,
    report_file: ReportOption = None,
) -> None:
    """Push the last build of each image: every tag, immutable tags before moving ones."""
    from .progress import PlainProgress, summary
    from .publish import push_last_builds
    from .report import BuildReport

    project = _project()
    display = PlainProgress(err if as_json else out)
    report = BuildReport()
    failure: RolecastError | None = None
    try:
        rules = _rules(project, version, tag)
        report = push_last_builds(project, list(images or []), rules, display)
    except RolecastError as exc:
        failure = exc
    _finish(report, failure, as_json, report_file, summary)


@app.command("login")
def login_command(
    registry: Annotated[str, typer.Argument(help="The registry, HOST[:PORT].")],
    username: Annotated[str, typer.Option("-u", "--username", help="The user name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Store registry credentials in the Docker config, as `docker login` does."""
    from .errors import UsageError
    from .publish import login

    if not password_stdin:
        raise _fail(UsageError("give the password on standard input: --password-stdin"))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise _fail(UsageError("no password on standard input"))
    guarded(lambda: login(registry, username, password))
    out.print(f"logged in to {registry} as {username}", markup=False, highlight=False)


@app.command("plan")
def plan_command(
    images: Annotated[
        list[str] | None, typer.Argument(help="Images to plan (default: all), with parents.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for pipelines.")] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="table, json, github-matrix, mermaid or dot.", metavar="FORMAT"
        ),
    ] = "table",
) -> None:
    """Say which images are fresh, stale or missing, from which stage, and why."""
    from . import graph
    from .engines import connect
    from .errors import UsageError
    from .plan import plan_images

    formats = ("table", "json", "github-matrix", "mermaid", "dot")
    if output_format not in formats:
        raise _fail(UsageError(f"--format {output_format}: use {', '.join(formats)}"))
    if as_json:
        output_format = "json"
    project = _project()
    plans = guarded(lambda: plan_images(connect(), project, list(images or [])))
    if output_format == "json":
        typer.echo(json.dumps([p.as_dict() for p in plans], indent=2))
    elif output_format == "github-matrix":
        typer.echo(json.dumps(graph.github_matrix(project, plans), separators=(",", ":")))
    elif output_format == "mermaid":
        typer.echo(graph.mermaid(project, plans), nl=False)
    elif output_format == "dot":
        typer.echo(graph.dot(project, plans), nl=False)
    else:
        table = Table(box=None, header_style="bold")
        for column in ("IMAGE", "STATUS", "FIRST STAGE", "WHY"):
            table.add_column(column)
        for item in plans:
            table.add_row(item.name, item.status, item.first_stage or "-", item.reason)
        out.print(table)


@app.command("history")
def history_command(
    images: Annotated[list[str] | None, typer.Argument(help="Images (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="Newest N records.")] = 20,
) -> None:
    """Show the recorded builds: result, stages run and reused, duration, image, log."""
    import datetime as dt

    from .history import History

    root = state.root
    records = History(root).records(list(images or []) or None, limit)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "IMAGE", "STARTED", "DURATION", "RESULT", "RAN", "REUSED", "IMAGE ID"):
        table.add_column(column, overflow="fold")
    for r in records:
        started = dt.datetime.fromtimestamp(r.started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(r.id),
            r.image,
            started,
            f"{r.duration:.1f}s" if r.duration is not None else "-",
            r.result,
            ", ".join(r.stages_run) or "-",
            str(len(r.stages_reused)),
            r.image_id[7:19] if r.image_id else "-",
        )
    out.print(table)


cache_app = typer.Typer(
    help="The stage cache: one image per role stage, rolecast-cache/PROJECT/IMAGE:FINGERPRINT.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def cache_ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List cached stage images with their stage, size and age."""
    import datetime as dt

    from .build.cache import cached_stages
    from .engines import connect
    from .progress import size_text

    project = _project()
    stages = guarded(lambda: cached_stages(connect(), project))
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in stages], indent=2))
        return
    now = dt.datetime.now(dt.UTC)
    table = Table(box=None, header_style="bold")
    for column in ("IMAGE", "STAGE", "FINGERPRINT", "SIZE", "AGE", "CURRENT"):
        table.add_column(column)
    for s in stages:
        age = now - s.created
        age_text = (
            f"{age.days}d" if age.days else f"{age.seconds // 3600}h{age.seconds // 60 % 60:02d}m"
        )
        table.add_row(
            s.image,
            s.stage,
            s.reference.rsplit(":", 1)[1][:12],
            size_text(s.size),
            age_text,
            "yes" if s.current else "",
        )
    out.print(table)


@cache_app.command("prune")
def cache_prune(
    keep: Annotated[int, typer.Option("--keep", min=0, help="Older stages to keep per image.")] = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    volumes: Annotated[
        bool,
        typer.Option(
            "--volumes",
            help="Also remove the project's apt cache volumes, and the volumes and "
            "stages of checkouts that are gone.",
        ),
    ] = False,
) -> None:
    """Remove cached stages that no current fingerprint uses (but the newest --keep)."""
    from .build.cache import prune, prune_apt_volumes
    from .engines import connect
    from .progress import size_text

    project = _project()
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


def main() -> None:
    app()
