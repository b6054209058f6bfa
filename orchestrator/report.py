"""What a build says: the phases of one image's build, its events, and the build report.

The phase names are the words the progress display shows, the build log records and the
report carries; every module that speaks of a phase takes its name from `Phase`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
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
