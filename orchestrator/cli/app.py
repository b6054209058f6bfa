"""The application every command hangs on: consoles, global options, errors to exit codes."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..errors import ExitCode, Problem, RolecastError, SpecError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..project import Project


class Commands(typer.core.TyperGroup):
    """A command group whose help lists each command with its whole first paragraph (click
    cuts it to the width left on one line)."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                text = command.short_help or command.help or ""
                rows.append((name, inspect.cleandoc(text).split("\n\n")[0]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# Help and usage errors in plain text (rich_markup_mode None): rich's panels cost --help
# about a third of its time.
app = typer.Typer(
    cls=Commands,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Build immutable container images from Ansible roles, through Packer.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def console(stderr: bool = False, terminal: bool | None = None) -> Console:
    """A console for stdout or stderr; `terminal` True forces a terminal's live output
    (`--progress tty`). Colour follows rich's rules: none with NO_COLOR set (to anything)."""
    from rich.console import Console

    is_tty = (sys.stderr if stderr else sys.stdout).isatty()
    # A pipeline's log is not 80 columns wide: tables keep whole image names there.
    return Console(
        stderr=stderr,
        soft_wrap=True,
        width=None if is_tty or terminal else 200,
        force_terminal=terminal,
    )


class LazyConsole:
    """A console made on first use: `rolecast --help` and the commands that print
    nothing do not load rich."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    @cached_property
    def console(self) -> Console:
        return console(stderr=self.stderr)

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


out = LazyConsole()
err = LazyConsole(stderr=True)


def table(columns: Iterable[str], **column_options: Any) -> Table:
    """A listing's table: no borders, bold headings."""
    from rich.table import Table

    listing = Table(box=None, header_style="bold")
    for column in columns:
        listing.add_column(column, **column_options)
    return listing


T = TypeVar("T")


class State:
    root: Path = Path(".")
    file: Path | None = None
    inventory: Path | None = None
    found_upward: bool = False  # no -C/-f: the root is where rolecast.yml was found
    directory_given: bool = False  # -C (or ROLECAST_DIRECTORY)


state = State()

# Options several commands take, spelled once.


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


def _project(extra_vars: list[str] | None = None) -> Project:
    """The project, with the -e of this run (in its fingerprints and builds)."""
    from ..extra_vars import parse_extra_vars
    from ..project import load_project

    def load() -> Project:
        extra = parse_extra_vars(extra_vars or [])
        try:
            return load_project(state.root, state.file, state.inventory, extra)
        except SpecError as exc:
            hint = _root_hint()
            if hint:
                raise SpecError([*exc.problems, hint]) from None
            raise

    project = guarded(load)
    kind = project.loaded.spec.defaults.engine
    if kind is not None and not os.environ.get("ROLECAST_ENGINE"):  # --engine wins
        from ..engines.podman import use_kind

        use_kind(kind, address_given=bool(os.environ.get("DOCKER_HOST")))
    for note in project.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    return project


def _root_hint() -> Problem | None:
    """-f names a spec elsewhere, without -C: its paths are read from the working directory."""
    if state.file is None or state.directory_given:
        return None
    spec_dir = (state.root / state.file).resolve().parent
    if spec_dir == state.root.resolve() or (state.root / "roles").is_dir():
        return None
    return Problem(
        str(state.file),
        None,
        None,
        "",
        f"paths in it are read from the project root, {state.root.resolve()} (the working "
        f"directory); if its roles are beside it, give the root: -C {spec_dir}"
        + ("" if state.file.name == "rolecast.yml" else f" -f {state.file.name}"),
    )


def _checked_project(
    vault_arguments: tuple[str, ...] | None = (),
    images: list[str] | None = None,
    extra_vars: list[str] | None = None,
) -> Project:
    """The project, with everything its (chosen) images read checked before any work.
    `vault_arguments` None: the command decrypts nothing, vaulted files are not its concern."""
    from ..checks import check_project, vault_password_given
    from ..tags import git_info

    project = _project(extra_vars)

    def check() -> None:
        chosen = project.select(list(images or []))
        check_project(
            project,
            vault_given=vault_arguments is None
            or vault_password_given(project.root, vault_arguments),
            git=git_info(project.root.resolve()),
            images=chosen,
            vault_arguments=vault_arguments or (),
        )

    guarded(check)
    return project


def _print_versions() -> None:
    from ..tools import versions

    for line in versions().lines():
        out.print(line, markup=False, highlight=False)


def _use_spec_engine_kind(directory: Path | None, file: Path | None) -> None:
    """`engine:` in the spec's defaults, for --version, which loads no project: read from
    the YAML alone; a spec that cannot be read says nothing here (validate says why)."""
    import yaml

    from ..engines.podman import ENGINE_KINDS, use_kind
    from ..specfile import find_spec_file

    try:
        data = yaml.safe_load(find_spec_file(_root(directory, file)[0], file).read_text())
        kind = data["defaults"]["engine"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, UnicodeDecodeError):
        return
    if kind in ENGINE_KINDS:
        use_kind(kind, address_given=bool(os.environ.get("DOCKER_HOST")))


def _root(directory: Path | None, file: Path | None) -> tuple[Path, bool]:
    """-C, else (without -f) the nearest directory upward holding rolecast.yml, else here."""
    if directory is not None or file is not None:
        return directory or Path("."), False
    from ..specfile import find_project_root

    found = find_project_root(Path.cwd())
    if found is None or found == Path.cwd().resolve():
        return Path("."), False
    return found, True


def _named(ctx: typer.Context, param: str, flag: str) -> str:
    """How the user gave an option: its flag, or the environment variable that set it."""
    source = ctx.get_parameter_source(param)
    if source is not None and source.name == "ENVIRONMENT":
        return f"ROLECAST_{param.upper()}="
    return flag


def _use_engine(docker_host: str, source: str = "--docker-host") -> None:
    """-H: everything that talks to the engine follows it: the SDK, Packer's docker
    builder, the docker connection and the stage commits (all read DOCKER_HOST)."""
    from ..engines.address import invalid, shown

    problem = invalid(docker_host)
    if problem:
        err.print(
            f"{source} {shown(docker_host)}: {problem}; use unix:///path/to/"
            "docker.sock, tcp://HOST:2376 or ssh://USER@HOST",
            markup=False,
        )
        raise typer.Exit(ExitCode.INVALID_INPUT)
    os.environ["DOCKER_HOST"] = docker_host


DockerHostOption = Annotated[
    str | None,
    typer.Option(
        "-H",
        "--docker-host",
        metavar="URL",
        help="The Docker engine to build on (unix://PATH, tcp://HOST:PORT, ssh://USER@HOST); "
        "default: DOCKER_HOST, else the local socket.",
    ),
]
EngineKindOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="docker|podman",
        envvar="ROLECAST_ENGINE",
        help="The kind of engine -H names (default: Podman when DOCKER_HOST is a socket "
        "that answers as Podman, else Docker); podman without -H: Podman's own socket.",
    ),
]


def _use_engine_kind(ctx: typer.Context, kind: str, given: str | None) -> None:
    """--engine: the kind of engine, for everything connect() returns; Podman without an
    address is Podman's own rootful socket."""
    from ..engines.podman import ENGINE_KINDS, use_kind

    if kind.strip().lower() not in ENGINE_KINDS:
        named = _named(ctx, "engine", "--engine ")
        err.print(f"{named}{kind}: choose docker or podman", markup=False)
        raise typer.Exit(ExitCode.INVALID_INPUT)
    use_kind(kind.strip().lower(), address_given=bool(given))


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Option(
            "-f",
            "--file",
            metavar="FILE",
            envvar="ROLECAST_FILE",
            help="The spec file (default: rolecast.yml in the root).",
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "-C",
            "--directory",
            metavar="DIR",
            envvar="ROLECAST_DIRECTORY",
            help="The project root (roles/, playbooks/, ...); default: the nearest directory "
            "holding rolecast.yml, from here upward.",
        ),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "-i",
            "--inventory",
            metavar="INVENTORY",
            envvar="ROLECAST_INVENTORY",
            help="Use this Ansible inventory instead of the spec's.",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("-v", "--verbose", metavar="", envvar="ROLECAST_VERBOSE", help="Say more."),
    ] = False,
    docker_host: DockerHostOption = None,
    engine: EngineKindOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            help="Print the versions of rolecast and the tools it found (on the -H engine).",
        ),
    ] = False,
) -> None:
    if engine is not None:
        _use_engine_kind(ctx, engine, given=docker_host or os.environ.get("DOCKER_HOST"))
    if docker_host is not None:
        _use_engine(docker_host)
    elif os.environ.get("DOCKER_HOST"):
        _use_engine(os.environ["DOCKER_HOST"], "DOCKER_HOST")
    if version:  # after -H (and --engine, or the spec's engine): the chosen engine's
        if engine is None and not os.environ.get("ROLECAST_ENGINE"):
            _use_spec_engine_kind(directory, file)
        _print_versions()
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        ctx.fail("Missing command.")  # as without --version
    if directory is not None and not directory.is_dir():
        named = _named(ctx, "directory", "-C ")
        err.print(f"{named}{directory}: no such directory", markup=False)
        raise typer.Exit(ExitCode.INVALID_INPUT)
    from ..credentials import take_credentials

    take_credentials()  # registry credentials leave the environment children inherit
    state.root, state.found_upward = _root(directory, file)
    state.directory_given = directory is not None
    state.file = file
    state.inventory = inventory
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
