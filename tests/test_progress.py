"""How a build shows itself: the modes of --progress, the live view, NO_COLOR."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

import pytest
from rich.console import Console
from rich.text import Text

from orchestrator.cli.app import console
from orchestrator.progress import (
    LiveProgress,
    PlainProgress,
    QuietProgress,
    choose,
    clock_text,
)
from orchestrator.report import Event, Phase, PhaseClock, process_age

COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3\d|9\d|38;5;\d+)m")  # a foreground colour


def captured(terminal: bool = False, width: int = 100) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=width)


def text_of(view: LiveProgress) -> str:
    screen = captured()
    screen.print(view.render())
    assert isinstance(screen.file, io.StringIO)
    return screen.file.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_live_view_counts_images_and_times_each_against_its_last_build() -> None:
    clock = Clock()
    view = LiveProgress(captured(), {"web": 70.0}, clock=clock)
    for name in ("web", "app"):
        view(Event(name, Phase.WAITING))
    view(Event("web", Phase.TASK, role="nginx", role_index=1, role_count=2, task="Install"))
    clock.now += 42
    screen = text_of(view)
    assert "0 of 2 images done" in screen
    assert re.search(r"web +role 1 of 2: nginx / Install +0:42 / ~1:10", screen)
    assert re.search(r"· app +waiting", screen)

    view(Event("web", Phase.DONE, "0123456789ab r/web:1"))
    view(Event("app", Phase.STARTING))
    clock.now += 8
    view(Event("app", Phase.FAILED, "image app: role x, task 'y' failed: boom; log: l"))
    screen = text_of(view)
    assert "2 of 2 images done, 1 failed" in screen
    assert re.search(r"✓ web +done: 0123456789ab r/web:1 +0:42\n", screen)  # no estimate now
    assert re.search(r"✗ app +failed: role x, task 'y' failed: boom; log: l +0:08\n", screen)


def test_clock_text_reads_as_a_stopwatch() -> None:
    assert [clock_text(s) for s in (0, 42.9, 70, 3600 + 62)] == ["0:00", "0:42", "1:10", "1:01:02"]


def test_each_mode_has_its_display() -> None:
    pipe, terminal = captured(), captured(terminal=True)
    assert isinstance(choose("auto", pipe), PlainProgress)
    assert isinstance(choose("auto", terminal), LiveProgress)
    assert isinstance(choose("tty", terminal), LiveProgress)
    assert isinstance(choose("plain", terminal), PlainProgress)
    assert isinstance(choose("quiet", terminal), QuietProgress)


def test_plain_lines_are_timestamped_and_quiet_says_only_warnings() -> None:
    plain, quiet = captured(), captured()
    events = [
        Event("web", Phase.WAITING),
        Event("web", Phase.STARTING_CONTAINER),
        Event("web", Phase.NOTE, "installed for Ansible: python3-apt"),
        Event("web", Phase.NOTE, "warning: service start/restart skipped"),
    ]
    for event in events:
        PlainProgress(plain)(event)
        QuietProgress(quiet)(event)
    lines = plain.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 3
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ web: ", line) for line in lines)
    assert lines[0].endswith("web: starting container")
    assert quiet.file.getvalue() == "web: warning: service start/restart skipped\n"  # type: ignore[attr-defined]


def test_no_color_turns_colour_off_even_on_a_forced_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    console(terminal=True).print(Text("red", style="red"))
    assert COLOUR.search(capsys.readouterr().out)

    monkeypatch.setenv("NO_COLOR", "1")
    shown = console(terminal=True)
    shown.print(Text("red", style="red"))
    with LiveProgress(shown, {"web": 5.0}) as view:
        view(Event("web", Phase.WAITING))
        view(Event("web", Phase.STARTING))
        view(Event("web", Phase.DONE, "built"))
    written = capsys.readouterr().out
    assert "1 of 1 images done" in written and "done: built" in written
    assert not COLOUR.search(written)


def test_plain_is_progress_plain_and_conflicts_with_another_mode(cli: object) -> None:
    done = cli("build", "--plain", "--progress", "quiet", "web")  # type: ignore[operator]
    assert done.exit_code == 2
    assert "--plain is --progress plain" in done.output
    done = cli("build", "--plain", "no-such-image")  # type: ignore[operator]
    assert done.exit_code == 2 and "no-such-image" in done.output


def test_the_phase_clock_adds_up_each_phase_in_the_order_first_entered() -> None:
    now = [100.0]
    clock = PhaseClock(now=lambda: now[0], since=2.0)  # the process started 2 s ago

    def at(seconds: float, event: Event) -> None:
        now[0] += seconds
        clock.on_event(event)

    at(1.0, Event("app", Phase.STARTING_CONTAINER))
    at(0.5, Event("app", Phase.PREPARING))
    at(3.0, Event("app", Phase.ANSIBLE))
    at(1.0, Event("app", Phase.TASK, task="Gathering Facts"))
    at(2.0, Event("app", Phase.TASK, task="rolecast: apt lists"))  # the bootstrap's, waited
    at(0.25, Event("app", Phase.TASK, role="nginx", task="Install nginx"))
    at(4.0, Event("app", Phase.SAVING_STAGE, "role nginx"))
    at(1.0, Event("app", Phase.TASK, role="nginx", task="restart nginx"))
    at(0.5, Event("app", Phase.NOTE, "not a phase"))
    at(0.5, Event("app", Phase.CLEANING_UP))
    now[0] += 2.0
    assert clock.stop() == {
        "start": 3.0,
        "container": 0.5,
        "bootstrap": 3.25,
        "ansible start": 1.0,
        "facts": 2.0,
        "role nginx": 5.0,
        "stage commits": 1.0,
        "clean-up": 2.0,
    }


def test_the_process_age_counts_from_the_interpreters_own_start() -> None:
    before = time.monotonic()
    said = subprocess.run(
        [sys.executable, "-c", "from orchestrator.report import process_age; print(process_age())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lived = time.monotonic() - before
    # It includes the interpreter's start and its imports, and the kernel counts in ticks.
    assert 0.01 <= float(said) <= lived + 0.02
    assert process_age() > float(said)  # this process has lived longer
