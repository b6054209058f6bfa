"""What a build says: the phases of one image's build, its events, and the build report.

The phase names are the words the progress display shows, the build log records and the
report carries; every module that speaks of a phase takes its name from `Phase`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Phase(StrEnum):
    INSTALLING = "installing"  # requirements
    INSTALLED = "installed"
    LOCK = "lock"
    RECOVERED = "recovered"
    BASE_IMAGE = "base image"
    PULLING_PARENT = "pulling parent image"
    PLANNED = "planned"
    CACHE = "cache"
    STARTING = "starting"
    STARTING_CONTAINER = "starting container"
    PREPARING = "preparing"
    ANSIBLE = "ansible"
    TASK = "task"
    SAVING_STAGE = "saving stage"  # a cached stage committed between two roles
    STOPPING_SERVICES = "stopping services"  # before a commit, every service of the play
    CLEANING_UP = "cleaning up"
    COMMITTING = "committing"
    TAGGING = "tagging"
    IDEMPOTENCE = "idempotence check"
    VERIFYING = "verifying"
    PUSHING = "pushing"
    PUSH = "push"
    NOTE = "note"
    OUTPUT = "output"
    WAITING = "waiting"  # an image of the run, before its build starts
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How an image's build ended, in the report and in the history."""

    RUNNING = "running"
    BUILT = "built"
    FRESH = "fresh"
    FAILED = "failed"
    SKIPPED = "skipped"
    PUSHED = "pushed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Event:
    """A change in one image's build, for whatever shows progress."""

    image: str
    phase: str
    message: str = ""
    role: str | None = None
    role_index: int | None = None
    role_count: int | None = None
    task: str | None = None
    line: str | None = None


OnEvent = Callable[[Event], None]


# Where one image's build spends its time, in the order a build goes through them: the
# `phases` of the report and the history. A role's own time is "role NAME"; tasks of a
# playbook outside any role are "play".
START, PARENT, CONTAINER, BOOTSTRAP = "start", "parent", "container", "bootstrap"
ANSIBLE_START, FACTS, PLAY, STAGE_COMMITS = "ansible start", "facts", "play", "stage commits"
CLEAN_UP, COMMIT, TAG, GATES, PUSH = "clean-up", "commit", "tag", "gates", "push"
FACTS_TASK = "Gathering Facts"
LISTS_TASK = "rolecast: apt lists"  # the play's wait for the bootstrap's apt lists

# The timed phase an event of the build starts (TASK events are told apart by their role).
_TIMED: dict[str, str] = {
    Phase.BASE_IMAGE: PARENT,
    Phase.PULLING_PARENT: PARENT,
    Phase.STARTING: START,
    Phase.STARTING_CONTAINER: CONTAINER,
    Phase.PREPARING: BOOTSTRAP,
    Phase.ANSIBLE: ANSIBLE_START,
    Phase.SAVING_STAGE: STAGE_COMMITS,
    Phase.STOPPING_SERVICES: CLEAN_UP,
    Phase.CLEANING_UP: CLEAN_UP,
    Phase.COMMITTING: COMMIT,
    Phase.TAGGING: TAG,
    Phase.IDEMPOTENCE: GATES,
    Phase.VERIFYING: GATES,
    Phase.PUSHING: PUSH,
    Phase.PUSH: PUSH,
}


def process_age() -> float:
    """Seconds since this process started (the interpreter's own start included), from
    the kernel's record of it; 0 where there is none."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _task_phase(task: str | None) -> str:
    if task == FACTS_TASK:
        return FACTS
    return BOOTSTRAP if (task or "").startswith(LISTS_TASK) else PLAY


class PhaseClock:
    """The seconds one image's build spends in each phase. The build's events move it from
    one phase to the next; time in a phase entered again (a role's handlers, a second stage
    commit) adds up. The first phase, `start`, counts from the process's own start."""

    def __init__(self, now: Callable[[], float] = time.monotonic, since: float = 0.0) -> None:
        self._now = now
        self._phase = START
        self._since = now() - since
        self.seconds: dict[str, float] = {}

    def enter(self, phase: str) -> None:
        at = self._now()
        self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + at - self._since
        self._phase, self._since = phase, at

    def on_event(self, event: Event) -> None:
        if event.phase == Phase.TASK:
            if event.role:
                self.enter(f"role {event.role}")
            else:
                self.enter(_task_phase(event.task))
        elif event.phase in _TIMED:
            self.enter(_TIMED[event.phase])

    def stop(self) -> dict[str, float]:
        """The phases so far, rounded to milliseconds, in the order they were first entered."""
        self.enter(self._phase)
        return {name: round(value, 3) for name, value in self.seconds.items()}


@dataclass
class TaskTiming:
    image: str
    role: str | None
    task: str
    seconds: float


@dataclass
class ImageResult:
    name: str
    result: str  # an Outcome
    tags: list[str] = field(default_factory=list)
    image_id: str | None = None
    size: int | None = None
    seconds: float = 0.0
    log: str | None = None
    connection: str | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    fingerprint: str | None = None
    stages_run: list[str] = field(default_factory=list)
    stages_reused: list[str] = field(default_factory=list)
    stages_pulled: list[str] = field(default_factory=list)
    pushed: list[dict[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds in each phase
    record: int | None = None  # its build's record in the history

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.result,
            "fingerprint": self.fingerprint,
            "stages_run": self.stages_run,
            "stages_reused": self.stages_reused,
            "stages_pulled": self.stages_pulled,
            "pushed": self.pushed,
            "tags": self.tags,
            "image_id": self.image_id,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "phases": self.phases,
            "log": self.log,
            "connection": self.connection,
            "notes": self.notes,
            "error": self.error,
        }


@dataclass
class BuildReport:
    images: list[ImageResult] = field(default_factory=list)
    tasks: list[TaskTiming] = field(default_factory=list)

    def slowest(self, count: int = 5) -> list[TaskTiming]:
        return sorted(self.tasks, key=lambda t: t.seconds, reverse=True)[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": [i.as_dict() for i in self.images],
            "slowest_tasks": [
                {"image": t.image, "role": t.role, "task": t.task, "seconds": round(t.seconds, 3)}
                for t in self.slowest()
            ],
        }
