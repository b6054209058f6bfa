"""The `rolecast` command line: parse, call one domain function, map errors to exit codes.

One module per group of commands; each registers its commands on the one `app`."""

from __future__ import annotations

from . import building, cache, inspecting  # noqa: F401  (they register their commands)
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    import sys

    import typer

    from .arguments import hoist_global_options

    # Built once (`app(...)` would build it again): the same command, without typer's
    # exception hook, which only prints tracebacks prettily and those are off.
    command = typer.main.get_command(app)
    command(args=hoist_global_options(sys.argv[1:], command), prog_name="rolecast")
