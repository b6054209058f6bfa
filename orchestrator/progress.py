"""How a build shows itself: a live view on a terminal, timestamped lines elsewhere, or
only the result (`--progress auto|tty|plain|quiet`, as `docker buildx --progress`)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .report import BuildReport, Event, Phase

MODES = ("auto", "tty", "plain", "quiet")


class Display(Protocol):
    def __enter__(self) -> Display: ...
    def __exit__(self, *exc: Any) -> None: ...
    def __call__(self, event: Event) -> None: ...


def choose(mode: str, console: Console, estimates: Mapping[str, float] | None = None) -> Display:
    """The display for a mode: `auto` is live when the console is a terminal, `tty` is
    live always (the console must then force a terminal)."""
    if mode == "quiet":
        return QuietProgress(console)
    if mode == "plain" or (mode == "auto" and not console.is_terminal):
        return PlainProgress(console)
    return LiveProgress(console, estimates)


def describe(event: Event) -> str:
    if event.phase == Phase.TASK:
        if event.role and event.role_index and event.role_count:
            where = f"role {event.role_index} of {event.role_count}: {event.role}"
        elif event.role:
            where = f"role {event.role}"
        else:
            where = "play"
        return f"{where} / {event.task}"
    if event.message:
        return f"{event.phase}: {event.message.removeprefix(f'image {event.image}: ')}"
    return event.phase


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:03: how long, as a stopwatch shows it."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainProgress:
    """One timestamped line per phase and per task: for logs and pipelines."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, event: Event) -> None:
        if event.phase == Phase.WAITING:
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = event.line if event.phase == Phase.OUTPUT else describe(event)
        self.console.print(f"{stamp} {event.image}: {text}", markup=False, highlight=False)


class QuietProgress:
    """Nothing while the build runs but its warnings: errors and the result come after."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, event: Event) -> None:
        if event.phase == Phase.NOTE and event.message.startswith("warning"):
            self.console.print(f"{event.image}: {event.message}", markup=False, highlight=False)


ENDED = {Phase.DONE: "✓", Phase.FAILED: "✗", Phase.SKIPPED: "-"}


@dataclass
class Row:
    image: str
    text: str = Phase.WAITING
    started: float | None = None
    ended: float | None = None
    mark: str = "·"  # waiting; a spinner while it runs; then one of ENDED


class LiveProgress:
    """`N of M images`, then a line per image, redrawn in place: its phase or task, and its
    time against the last successful build's (`web  0:42 / ~1:10`)."""

    def __init__(
        self,
        console: Console,
        estimates: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.estimates = dict(estimates or {})
        self.clock = clock
        self.rows: dict[str, Row] = {}
        self.lock = threading.Lock()
        self.spinner = Spinner("dots", style="cyan")
        self.live = Live(
            console=console, get_renderable=self.render, refresh_per_second=4, transient=False
        )

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.stop()

    def __call__(self, event: Event) -> None:
        if event.phase in (Phase.OUTPUT, Phase.NOTE):
            text = f"  {event.line}" if event.phase == Phase.OUTPUT else describe(event)
            prefix = "" if event.phase == Phase.OUTPUT else f"{event.image}: "
            self.console.print(f"{prefix}{text}", markup=False, highlight=False)
            return
        with self.lock:
            row = self.rows.setdefault(event.image, Row(event.image))
            if event.phase == Phase.WAITING:
                return
            now = self.clock()
            if row.started is None:
                row.started = now
            row.text = describe(event)
            if event.phase in ENDED:
                row.ended, row.mark = now, ENDED[Phase(event.phase)]
        self.live.refresh()

    def time_text(self, row: Row) -> str:
        if row.started is None:
            return ""
        text = clock_text((row.ended or self.clock()) - row.started)
        estimate = self.estimates.get(row.image)
        if estimate is not None and row.ended is None:
            text += f" / ~{clock_text(estimate)}"
        return text

    def render(self) -> RenderableType:
        with self.lock:
            rows = list(self.rows.values())
        ended = [r for r in rows if r.ended is not None]
        failed = sum(1 for r in ended if r.mark == ENDED[Phase.FAILED])
        head = f"{len(ended)} of {len(rows)} images done" + (f", {failed} failed" if failed else "")
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1, no_wrap=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        for row in rows:
            running = row.started is not None and row.ended is None
            mark: RenderableType = self.spinner if running else Text(row.mark)
            grid.add_row(mark, row.image, Text(row.text), self.time_text(row))
        return Group(Text(head, style="bold"), grid)


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(size)


def summary(report: BuildReport, quiet: bool = False) -> list[Table]:
    images = Table(title="Images", box=None, header_style="bold", title_justify="left")
    for column in ("IMAGE", "TAGS", "IMAGE ID", "SIZE", "DURATION", "RESULT"):
        images.add_column(column, overflow="fold", min_width=len(column))
    for item in report.images:
        images.add_row(
            item.name,
            "\n".join(item.tags) or "-",
            item.image_id[7:19] if item.image_id else "-",
            size_text(item.size),
            f"{item.seconds:.1f}s" if item.seconds else "-",
            item.result,
        )
    tables = [images]
    slowest = [] if quiet else report.slowest()
    if slowest:
        tasks = Table(title="Slowest tasks", box=None, header_style="bold", title_justify="left")
        for column in ("IMAGE", "ROLE", "TASK", "DURATION"):
            tasks.add_column(column, overflow="fold", min_width=len(column))
        for t in slowest:
            tasks.add_row(t.image, t.role or "-", t.task, f"{t.seconds:.1f}s")
        tables.append(tasks)
    return tables
