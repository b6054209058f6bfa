"""The image graph of one run: parents before children, independent images in parallel
(up to `jobs`), keep-going or fail-fast after a failure, and Ctrl-C. It knows nothing of
Packer or engines: it calls `build` for each image and reads the results."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..errors import BuildFailedError, InterruptedBuildError
from ..report import ImageResult, Outcome

BuildOne = Callable[[str, ImageResult | None], ImageResult]


@dataclass
class FleetResult:
    results: list[ImageResult] = field(default_factory=list)  # in build order
    failures: list[BuildFailedError] = field(default_factory=list)
    interrupted: list[BaseException] = field(default_factory=list)


@dataclass
class Fleet:
    order: list[str]  # parents before children
    parents: dict[str, str | None]  # the image of this run each is built from
    jobs: int = 1
    keep_going: bool = True
    cancel: threading.Event = field(default_factory=threading.Event)
    on_skip: Callable[[str, str], None] = lambda name, why: None

    def run(self, build: BuildOne) -> FleetResult:
        """Build every image; `build(name, parent's result)` raises BuildFailedError on a
        failure and InterruptedBuildError (or KeyboardInterrupt) when interrupted."""
        outcome = FleetResult()
        done: dict[str, ImageResult] = {}
        pending = list(self.order)
        running: dict[Future[ImageResult], str] = {}
        jobs = max(1, self.jobs)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="rolecast-build") as pool:
            while pending or running:
                for name in list(pending):
                    why = self.skip_reason(name, done, outcome)
                    parent = self.parents.get(name)
                    if why is not None:
                        pending.remove(name)
                        done[name] = ImageResult(name=name, result=Outcome.SKIPPED, error=why)
                        self.on_skip(name, why)
                    elif (parent is None or parent in done) and len(running) < jobs:
                        pending.remove(name)
                        running[pool.submit(build, name, done.get(parent or ""))] = name
                if running:
                    self.collect(running, done, outcome)
        outcome.results = [done[name] for name in self.order if name in done]
        return outcome

    def skip_reason(
        self, name: str, done: dict[str, ImageResult], outcome: FleetResult
    ) -> str | None:
        parent = self.parents.get(name)
        if outcome.failures and not self.keep_going:
            return "not started: an earlier image failed (--fail-fast)"
        if outcome.interrupted:
            return "not started: the build was interrupted"
        if parent in done and done[parent].result in (Outcome.FAILED, Outcome.SKIPPED):
            return f"{parent} {done[parent].result}"
        return None

    def collect(
        self,
        running: dict[Future[ImageResult], str],
        done: dict[str, ImageResult],
        outcome: FleetResult,
    ) -> None:
        """Wait for one build to end; Ctrl-C meanwhile stops every running build."""
        try:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        except KeyboardInterrupt as exc:
            self.cancel.set()  # every running Packer gets SIGINT and cleans up
            outcome.interrupted.append(exc)
            return
        for future in finished:
            name = running.pop(future)
            try:
                done[name] = future.result()
            except BuildFailedError as exc:
                done[name] = ImageResult(name=name, result=Outcome.FAILED, error=str(exc))
                outcome.failures.append(exc)
            except (InterruptedBuildError, KeyboardInterrupt) as exc:
                done[name] = ImageResult(name=name, result=Outcome.FAILED)
                outcome.interrupted.append(exc)
