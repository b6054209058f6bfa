"""The application every command hangs on: consoles, global options, errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from ..errors import ExitCode, RolecastError
from ..project import Project, load_project

if TYPE_CHECKING:
    pass

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


def _print_versions() -> None:
    from ..tools import versions

    for line in versions().lines():
        out.print(line, markup=False, highlight=False)


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
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
            help="Print the versions of rolecast and the tools it found (on the -H engine).",
        ),
    ] = False,
) -> None:
    if docker_host is not None:
        from ..engines.address import invalid, shown

        problem = invalid(docker_host)
        if problem:
            err.print(
                f"--docker-host {shown(docker_host)}: {problem}; use unix:///path/to/"
                "docker.sock, tcp://HOST:2376 or ssh://USER@HOST",
                markup=False,
            )
            raise typer.Exit(ExitCode.INVALID_INPUT)
        # Everything that talks to the engine follows it: the SDK, Packer's docker
        # builder, the docker connection and the stage commits (all read DOCKER_HOST).
        os.environ["DOCKER_HOST"] = docker_host
    if version:  # after -H: the engine version is the chosen engine's
        _print_versions()
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        ctx.fail("Missing command.")  # as without --version
    if not directory.is_dir():
        err.print(f"-C {directory}: no such directory", markup=False)
        raise typer.Exit(ExitCode.INVALID_INPUT)
    from ..publish import take_credentials

    take_credentials()  # registry credentials leave the environment children inherit
    state.root = directory
    state.file = file
    state.inventory = inventory
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
