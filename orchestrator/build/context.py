"""What every phase of one `rolecast build` run shares: the project, the options, the engine,
the tag rules, the progress callback, the cancel flag and the task timings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..engines import Engine
from ..history import History
from ..locks import ProjectLock
from ..names import project_containers
from ..project import Project, ResolvedImage
from ..report import Event, OnEvent, Phase, PhaseClock, TaskTiming, process_age
from ..tags import TagRules

STATE_DIR = ".rolecast"


@dataclass
class BuildOptions:
    verbose: bool = False
    version: str | None = None
    timeout: float = 7200.0
    connection: str | None = None
    vault_arguments: tuple[str, ...] = ()
    idempotence: bool = False
    no_cache: bool = False  # rebuild every selected image from its parent
    force: tuple[str, ...] = ()  # images to rebuild from their parent, fresh or not
    jobs: int = 1
    keep_going: bool = True
    tags: tuple[str, ...] = ()  # tag templates added to every image built (--tag)
    push: bool = False  # push every image built or kept fresh (besides `push: true` ones)
    cache_from: str | None = None  # a registry repository to look for stages in
    cache_to: str | None = None  # a registry repository to push stages to


@dataclass
class Context:
    project: Project
    options: BuildOptions
    engine: Engine
    on_event: OnEvent
    rules: TagRules
    packer: tuple[int, ...] = (1, 6, 6)
    cancel: threading.Event = field(default_factory=threading.Event)
    timings: list[TaskTiming] = field(default_factory=list)
    bases_done: set[str] = field(default_factory=set)
    bases_lock: threading.Lock = field(default_factory=threading.Lock)
    clocks: dict[str, PhaseClock] = field(default_factory=dict)  # by image, as it builds

    @cached_property
    def root(self) -> Path:
        return self.project.root.resolve()

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def logs(self) -> Path:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs

    @property
    def stamp(self) -> str:
        return self.rules.now.strftime("%Y%m%dT%H%M%SZ")

    @property
    def bases_log(self) -> Path:
        return self.logs / f"bases-{self.stamp}.log"

    @cached_property
    def history(self) -> History:
        return History(self.root)

    @property
    def identity(self) -> str:
        return self.project.identity

    @cached_property
    def containers_left(self) -> list[str]:
        """The names of the project's build containers, listed once a run."""
        found = self.engine.containers(name_prefix=project_containers(self.identity))
        return [c.name for c in found]

    def emit(self, image: str, phase: str, message: str = "", **extra: Any) -> None:
        event = Event(image=image, phase=phase, message=message, **extra)
        clock = self.clocks.get(image)
        if clock is not None:
            clock.on_event(event)
        self.on_event(event)

    def clock(self, image: str) -> PhaseClock:
        """The phase timings of an image's build, from the process's start."""
        self.clocks[image] = PhaseClock(since=process_age())
        return self.clocks[image]

    def lock(self, name: str, what: str, image: str) -> ProjectLock:
        """A lock of this project (an image, a base, the requirements), given up on Ctrl-C."""
        return ProjectLock(
            self.root, name, what, lambda text: self.emit(image, Phase.LOCK, text), self.cancel
        )

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def pushes(self, image: ResolvedImage) -> bool:
        """Whether the image's tags go to its registry (--push, or `push: true`)."""
        return self.options.push or image.spec.push

    def forced(self, name: str, spec_name: str) -> bool:
        """Whether the image is rebuilt from its parent, fresh or not."""
        force = self.options.force
        return self.options.no_cache or name in force or spec_name in force
