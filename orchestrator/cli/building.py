"""Commands that make and publish images: bases, render, build, push, login."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InterruptedBuildError, RolecastError

if TYPE_CHECKING:
    from ..progress import Display
    from ..project import Project
    from ..tags import TagRules

from .app import _checked_project, _fail, _project, app, console, err, guarded, out
from .options import (
    CacheFromOption,
    CacheToOption,
    ConnectionOption,
    ExtraVarsOption,
    ForceOption,
    IdempotenceOption,
    JobsOption,
    JsonOption,
    KeepGoingOption,
    NoCacheOption,
    PlainOption,
    ProgressMode,
    ProgressOption,
    PushOption,
    ReportOption,
    TagOption,
    TimeoutOption,
    VaultFileOption,
    VaultIdOption,
    VersionOption,
    image_names,
)


@app.command()
def bases(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="BASE", help="Bases to make (default: all).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Remake even when present.")
    ] = False,
    progress: ProgressOption = ProgressMode.AUTO,
    plain: PlainOption = False,
) -> None:
    """Make the spec's `bases:` images that are missing (pull, else debootstrap + import)."""
    import datetime as dt

    from ..bases import make_base
    from ..engines import connect

    mode = _mode(progress, plain, as_json=False)
    project = _project()

    def say(line: str) -> None:
        if mode == ProgressMode.PLAIN:
            line = f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {line}"
        if mode != ProgressMode.QUIET:
            out.print(line, markup=False, highlight=False)

    known = project.bases
    wanted = names or list(known)

    def work() -> None:
        from ..errors import UsageError

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
                say=say,
                force=force,
            )

    guarded(work)


@app.command("render")
def render_command(
    image: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE",
            autocompletion=image_names,
            help="The image whose Packer template to print.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="FILE", help="Write to this file instead."),
    ] = None,
    version: VersionOption = None,
    extra_vars: ExtraVarsOption = None,
) -> None:
    """Print the Packer template (HCL2 JSON syntax) that `rolecast build` runs for IMAGE."""
    from ..build import BuildOptions, render_image

    project = _checked_project(None, [image], extra_vars)
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

    from ..tags import TagRules, git_info

    _check_tags(extra or [])
    return TagRules(
        version=version,
        extra=tuple(extra or ()),
        git=git_info(project.root.resolve()),
        now=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


def _check_tags(extra: list[str]) -> None:
    """`--tag` templates, checked as the spec's are: unknown variables get a "did you mean"."""
    from ..errors import UsageError
    from ..tagvars import template_problems

    problems = [f"--tag: {m}" for text in extra for m in template_problems(text)]
    if problems:
        raise _fail(UsageError("\n".join(problems)))


def _mode(progress: ProgressMode, plain: bool, as_json: bool) -> ProgressMode:
    """The progress mode asked for: `--plain` is `--progress plain`; with --json, `auto`
    is plain lines (on stderr: stdout is the JSON's)."""
    from ..errors import UsageError

    if plain and progress not in (ProgressMode.AUTO, ProgressMode.PLAIN):
        raise _fail(UsageError(f"--plain is --progress plain: give one, not --progress {progress}"))
    if plain or (as_json and progress == ProgressMode.AUTO):
        return ProgressMode.PLAIN
    return progress


def _display(mode: ProgressMode, as_json: bool, estimates: dict[str, float]) -> Display:
    """Progress on stdout, or on stderr when stdout is the JSON's or the run is quiet."""
    from ..progress import choose

    to_stderr = as_json or mode == ProgressMode.QUIET
    shown = (err if to_stderr else out).console
    if mode == ProgressMode.TTY:
        shown = console(stderr=to_stderr, terminal=True)
    return choose(mode, shown, estimates)


def _check_build_flags(
    connection: str | None, cache_from: str | None, cache_to: str | None, tags: list[str]
) -> None:
    from ..errors import UsageError
    from ..spec import registry_problem

    _check_tags(tags)

    if connection not in (None, "auto", "mitogen", "docker", "proxy"):
        raise _fail(UsageError(f"--connection {connection}: use auto, mitogen, docker or proxy"))
    for flag, value in (("--cache-from", cache_from), ("--cache-to", cache_to)):
        problem = registry_problem(value, repository=True) if value is not None else None
        if problem is not None:
            raise _fail(UsageError(f"{flag}: {problem}"))


@app.command()
def build(
    images: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IMAGE",
            autocompletion=image_names,
            help="Images to build (default: all), with parents.",
        ),
    ] = None,
    progress: ProgressOption = ProgressMode.AUTO,
    plain: PlainOption = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", metavar="", help="Stream Ansible's output.")
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
    extra_vars: ExtraVarsOption = None,
) -> None:
    """Build images with Packer: render, run, commit, tag; in dependency order."""
    import signal

    from ..build import BuildOptions, build_images, vault_arguments
    from ..history import History
    from ..report import BuildReport

    mode = _mode(progress, plain, as_json)
    _check_build_flags(connection, cache_from, cache_to, list(tag or ()))
    secrets = guarded(lambda: vault_arguments(vault_password_file or [], vault_id or []))
    project = _checked_project(secrets, list(images or []), extra_vars)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    options = BuildOptions(
        verbose=verbose,
        version=version,
        timeout=timeout,
        connection=connection,
        vault_arguments=secrets,
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
    display = _display(mode, as_json, History(project.root).last_durations())
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
    _finish(report, failure, as_json, report_file, quiet=mode == ProgressMode.QUIET)


def _finish(
    report: Any,
    failure: RolecastError | None,
    as_json: bool,
    report_file: Path | None,
    quiet: bool = False,
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
        from ..progress import summary

        for table in summary(report, quiet):
            out.print(table)
    if failure is not None:
        raise _fail(failure)


@app.command("push")
def push_command(
    images: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IMAGE",
            autocompletion=image_names,
            help="Images to push (default: all), with parents.",
        ),
    ] = None,
    version: VersionOption = None,
    tag: TagOption = None,
    as_json: JsonOption = False,
    report_file: ReportOption = None,
    progress: ProgressOption = ProgressMode.AUTO,
    plain: PlainOption = False,
) -> None:
    """Push the last build of each image: every tag, immutable tags before moving ones."""
    from ..publish import push_last_builds
    from ..report import BuildReport

    mode = _mode(progress, plain, as_json)
    project = _project()
    display = _display(mode, as_json, {})
    report = BuildReport()
    failure: RolecastError | None = None
    with display:
        try:
            rules = _rules(project, version, tag)
            report = push_last_builds(project, list(images or []), rules, display)
        except RolecastError as exc:
            failure = exc
    _finish(report, failure, as_json, report_file, quiet=mode == ProgressMode.QUIET)


@app.command("login")
def login_command(
    registry: Annotated[str, typer.Argument(metavar="REGISTRY", help="The registry, HOST[:PORT].")],
    username: Annotated[
        str, typer.Option("-u", "--username", metavar="USER", help="The user name.")
    ],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", metavar="", help="Read the password from standard input."),
    ] = False,
) -> None:
    """Store registry credentials in the Docker config, as `docker login` does."""
    from ..errors import UsageError
    from ..publish import login

    if not password_stdin:
        raise _fail(UsageError("give the password on standard input: --password-stdin"))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise _fail(UsageError("no password on standard input"))
    guarded(lambda: login(registry, username, password))
    out.print(f"logged in to {registry} as {username}", markup=False, highlight=False)
