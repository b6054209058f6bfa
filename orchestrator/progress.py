"""How a build shows itself: a live display on a terminal, timestamped lines elsewhere."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .report import BuildReport, Event, Phase


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
        return f"{event.phase}: {event.message}"
    return event.phase


class PlainProgress:
    """One timestamped line per phase and per task: for logs and pipelines."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, event: Event) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = event.line if event.phase == Phase.OUTPUT else describe(event)
        self.console.print(f"{stamp} {event.image}: {text}", markup=False, highlight=False)


class LiveProgress:
    """A line per image with its current phase and elapsed time, redrawn in place."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[image]}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.rows: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if event.phase == Phase.OUTPUT:
            self.progress.console.print(f"  {event.line}", markup=False, highlight=False)
            return
        if event.image not in self.rows:
            self.rows[event.image] = self.progress.add_task("", image=event.image, total=None)
            self.started[event.image] = time.monotonic()
        row = self.rows[event.image]
        if event.phase == Phase.NOTE:
            self.progress.console.print(f"{event.image}: {event.message}", markup=False)
            return
        self.progress.update(row, description=describe(event))
        if event.phase == Phase.DONE:
            self.progress.update(row, total=1, completed=1)


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(size)


def summary(report: BuildReport) -> list[Table]:
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
    slowest = report.slowest()
    if slowest:
        tasks = Table(title="Slowest tasks", box=None, header_style="bold", title_justify="left")
        for column in ("IMAGE", "ROLE", "TASK", "DURATION"):
            tasks.add_column(column, overflow="fold", min_width=len(column))
        for t in slowest:
            tasks.add_row(t.image, t.role or "-", t.task, f"{t.seconds:.1f}s")
        tables.append(tasks)
    return tables
