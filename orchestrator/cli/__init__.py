"""The `rolecast` command line: parse, call one domain function, map errors to exit codes.

One module per group of commands; each registers its commands on the one `app`."""

from __future__ import annotations

from typing import NoReturn

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
    try:
        command(args=hoist_global_options(sys.argv[1:], command), prog_name="rolecast")
        code = 0
    except SystemExit as done:
        code = exit_code(done)
    leave(code)


def exit_code(done: SystemExit) -> int:
    """SystemExit's code as the interpreter reads it: a message is printed, and is 1."""
    import sys

    if done.code is None or isinstance(done.code, int):
        return done.code or 0
    print(done.code, file=sys.stderr)
    return 1


def leave(code: int) -> NoReturn:
    """Exit with `code` as the interpreter would, less its teardown: freeing every module
    and object costs ~80 ms, a sixth of a no-op rebuild. What the teardown would have
    done that matters is done first: output flushed, logging shut down, the exit
    handlers run. Every file Rolecast writes is closed by then; the history's last
    writes stay in SQLite's write-ahead log, which the next open reads."""
    import atexit
    import logging
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`), a closed stream
            pass
    logging.shutdown()
    atexit._run_exitfuncs()
    os._exit(code)
