"""Reading `packer build -color=false` output: phases, Ansible tasks, failures, the image.

The human-readable stream is read rather than `-machine-readable`, which writes newlines as
`\\n` and so cannot be told apart from the `\\n` escapes inside Ansible's JSON results.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .report import Phase

_PREFIX = re.compile(
    r"^\s*(?:==> |--> )?[A-Za-z0-9_.-]*docker\.[A-Za-z0-9_.-]+(?: \([a-z0-9-]+\))?:(?: |$)"
)
_TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[(?:(?P<role>[^:\]]+) : )?(?P<task>.*?)\] \**$")
_FATAL = re.compile(
    r"^(?:fatal|failed): \[[^\]]+\](?:: (?:FAILED|UNREACHABLE)!| \(item=.*?\)) => (?P<body>\{.*)$"
)
# Where the task (or the file Ansible could not load) is: ansible-core >= 2.19 says it on
# every failure ("Origin: /p/roles/x/tasks/main.yml:5:3"), -vv before every task.
_ORIGIN = re.compile(r"^(?:Origin|task path): (?P<path>\S.*?):(?P<line>\d+)(?::\d+)?$")
# Rolecast's own role in the play: it saves the cached stages between the user's roles.
# Its tasks are plumbing, never shown as a role or a task, nor timed as one.
STAGE_ROLE = "rolecast_stage"
STAGE_TASK = "cache stage "  # ... followed by the stage's name
PLUMBING_ROLES = frozenset({STAGE_ROLE})
# The clean-up says this before it stops the services of the play (services: run).
STOPPING_SERVICES_LINE = "rolecast: stopping the services of the play"
# ... and this once they are stopped and the clean-up goes on.
CLEANING_UP_LINE = "rolecast: cleaning up"
_IMAGE_ID = re.compile(r"^Image ID: (sha256:[0-9a-f]{64})$")


@dataclass
class Line:
    """One line of what Packer said, without its build prefix."""

    kind: str  # say (a `==>` line) | result (`-->`) | message
    text: str


def parse(raw: str) -> Line:
    stripped = raw.lstrip()
    kind = (
        "say"
        if stripped.startswith("==>")
        else "result"
        if stripped.startswith("-->")
        else "message"
    )
    return Line(kind, _PREFIX.sub("", raw, count=1))


@dataclass
class Failure:
    role: str | None
    task: str | None
    message: str
    origin: str | None = None  # PATH:LINE of the task, as Ansible names it


@dataclass
class BuildState:
    """What the output so far says about the build."""

    phase: str = Phase.STARTING
    role: str | None = None
    task: str | None = None
    image_id: str | None = None
    tagged: list[str] = field(default_factory=list)
    failure: Failure | None = None
    ansible_error: str | None = None
    origin: str | None = None  # PATH:LINE Ansible named since the current task started
    packer_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _error_lines: int = 0

    def feed(self, line: Line) -> str | None:
        """Update from one line; returns the new phase when the line starts one."""
        text = line.text.strip()
        if self._error_lines and text and text != "(source code not available)":
            # Packer explains a template error on the lines after it: where, and why.
            self.packer_errors[-1] += f"; {text.rstrip(':')}"
            self._error_lines -= 1
        if text.startswith("Error: "):
            self.packer_errors.append(text)
            self._error_lines = 2
        elif text.startswith(("Build '", "* ")):
            self.packer_errors.append(text)
        if text.startswith("Stderr: ") and len(text) > len("Stderr: "):
            self.packer_errors.insert(0, text[len("Stderr: ") :])
        for marker, marked in (
            (STOPPING_SERVICES_LINE, Phase.STOPPING_SERVICES),
            (CLEANING_UP_LINE, Phase.CLEANING_UP),
        ):
            if text == marker:
                self.phase = marked
                return marked
        if text.startswith("rolecast: "):
            self.notes.append(text[len("rolecast: ") :])
            return None
        match = _TASK.match(text)
        if match:
            self.role = match.group("role")
            self.task = match.group("task")
            self.origin = None
            if self.role in PLUMBING_ROLES:
                return Phase.SAVING_STAGE if (self.task or "").startswith(STAGE_TASK) else None
            return Phase.TASK
        match = _ORIGIN.match(text)
        if match:
            self.origin = f"{match.group('path')}:{match.group('line')}"
            return None
        match = _FATAL.match(text)
        if match:
            self._failed(match.group("body"))
            return None
        if text.startswith("...ignoring"):
            self.failure = None
            return None
        if "systemd is offline" in text and not any("init system" in n for n in self.notes):
            where = f"role {self.role}, task '{self.task}'" if self.role else f"task '{self.task}'"
            self.notes.append(
                "warning: service start/restart skipped, no init system runs in a build "
                f"(first: {where}); the image's command starts its services"
            )
            return None
        for marker in ("ERROR! ", "[ERROR]: "):
            if text.startswith(marker) and self.ansible_error is None:
                self.ansible_error = text[len(marker) :].rstrip(".")
                return None
        match = _IMAGE_ID.match(text)
        if match:
            self.image_id = match.group(1)
            return None
        if text.startswith("Repository: "):
            self.tagged.append(text[len("Repository: ") :])
            return None
        for needle, phase in (
            ("Starting docker container", Phase.STARTING_CONTAINER),
            ("Pulling Docker image", Phase.PULLING_PARENT),
            ("Provisioning with shell script", None),
            ("Provisioning with Ansible", Phase.ANSIBLE),
            ("Committing the container", Phase.COMMITTING),
            ("Running post-processor", Phase.TAGGING),
        ):
            if text.startswith(needle):
                if phase is None:
                    phase = Phase.PREPARING if self.phase != Phase.ANSIBLE else Phase.CLEANING_UP
                self.phase = phase
                return phase
        return None

    def _failed(self, body: str) -> None:
        failure = self.failure
        if failure and (failure.role, failure.task) == (self.role, self.task):
            return  # a loop's first failed item says more than its summary
        self.failure = Failure(self.role, self.task, _ansible_message(body), self.origin)


def stage_of(task: str | None) -> str:
    """The stage a plumbing task saves ("role nginx"), or "" for its other tasks."""
    return task[len(STAGE_TASK) :] if task and task.startswith(STAGE_TASK) else ""


def relative_origin(origin: str, root: Path) -> str:
    """PATH:LINE with PATH relative to the project's root when it is under it."""
    path, _, line = origin.rpartition(":")
    try:
        return f"{Path(path).relative_to(root)}:{line}"
    except ValueError:
        return origin


def _ansible_message(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()
    if not isinstance(data, dict):
        return body.strip()
    msg = data.get("msg") or data.get("reason") or ""
    stderr = (data.get("stderr") or "").strip()
    if stderr and (not msg or msg.startswith("non-zero return code")):
        msg = f"{msg}: {stderr.splitlines()[-1]}" if msg else stderr.splitlines()[-1]
    return str(msg).strip() or body.strip()
