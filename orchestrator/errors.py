"""One error family. Only the CLI turns these into exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    OK = 0
    FAILURE = 1
    INVALID_INPUT = 2
    MISSING_TOOL = 3
    INTERRUPTED = 130


class RolecastError(Exception):
    """Base of every error Rolecast reports to a user; the message says what to do."""

    exit_code: int = ExitCode.FAILURE


@dataclass(frozen=True)
class Problem:
    """One problem in an input file, located as precisely as the file allows."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    @property
    def location(self) -> str:
        """`FILE:LINE:COLUMN KEY.PATH`, as far as it is known."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where} {self.path}" if self.path else where

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class SpecError(RolecastError):
    """The spec (or a file it names) is invalid: one line per problem."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(RolecastError):
    """Arguments that do not fit the spec (an unknown image name, say)."""

    exit_code = ExitCode.INVALID_INPUT


class ToolMissingError(RolecastError):
    """A program Rolecast drives (packer, docker, debootstrap) is absent or not answering."""

    exit_code = ExitCode.MISSING_TOOL


class CommandFailedError(RolecastError):
    """A subprocess exited non-zero; carries the command and the tail of its output."""

    def __init__(self, argv: list[str], returncode: int, tail: list[str], what: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.tail = tail
        head = what or f"{argv[0]} failed"
        detail = tail[-1] if tail else "no output"
        super().__init__(f"{head} (exit {returncode}): {detail}")


class CommandTimeoutError(RolecastError):
    """A subprocess ran past its time limit and was stopped."""


class BuildFailedError(RolecastError):
    """An image build failed; the message names the image, step and log. `report` is the
    build report of the run it ended (the other images' results), when there is one."""

    report: object = None


class InterruptedBuildError(RolecastError):
    """The user (or a signal) stopped a build; everything it started was cleaned up."""

    exit_code = ExitCode.INTERRUPTED
