"""What a person sees: the live view in a real terminal (tmux), plain lines in a pipe."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.progress import clock_text

from ..conftest import _unavailable
from .helpers import EDGE, ROLECAST, copy_project, rolecast

pytestmark = pytest.mark.engine

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ quoting: ")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[list[str]]:
    """tmux on a socket of this test's own: the argv prefix to drive it."""
    if shutil.which("tmux") is None:
        _unavailable("tmux is not installed (scripts/setup.sh installs it)")
    prefix = ["tmux", "-f", "/dev/null", "-S", str(tmp_path / "tmux.sock")]
    yield prefix
    subprocess.run([*prefix, "kill-server"], capture_output=True)


def screen(tmux: list[str]) -> str:
    done = subprocess.run(
        [*tmux, "capture-pane", "-p", "-t", "build"], capture_output=True, text=True
    )
    return done.stdout


def wait_for(tmux: list[str], pattern: str, deadline: float, seen: list[str]) -> str:
    """Capture the pane until `pattern` shows (every capture kept in `seen`)."""
    while time.monotonic() < deadline:
        text = screen(tmux)
        seen.append(text)
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never showed; last screen:\n{seen[-1] if seen else ''}")


def test_live_view_in_a_terminal_and_plain_lines_in_a_pipe(
    tmp_path: Path, docker_engine: Any, tmux: list[str]
) -> None:
    project = copy_project(EDGE, tmp_path / "edge")
    # Stdout is a pipe: `auto` gives timestamped lines, never the live view.
    piped = rolecast("build", "quoting", cwd=project)
    assert piped.returncode == 0, piped.stderr[-2000:]
    progress = piped.stdout.split("\nImages\n")[0].splitlines()
    assert len(progress) > 5 and all(STAMPED.match(line) for line in progress), progress
    assert "images done" not in piped.stdout
    assert "rolecast_stage" not in piped.stdout
    (first,) = json.loads(rolecast("history", "--json", "quoting", cwd=project).stdout)
    estimate = f"/ ~{clock_text(first['duration'])}"

    # The same command in a 100x30 terminal, forced to build again: a live view with the
    # count of images and the time against the first build's. The terminal's size is the
    # pane's (a COLUMNS inherited from the test's own environment would override it).
    exit_file = tmp_path / "exit"
    command = (
        f"env -u COLUMNS -u LINES {ROLECAST} build --force quoting quoting; "
        f"echo $? > {exit_file}; sleep 600"
    )
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "build", "-x", "100", "-y", "30", "-c", str(project)]
        + [command],
        check=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 600
    live = wait_for(tmux, r"quoting role 1 of 1: marker / .* \d:\d\d / ~\d:\d\d", deadline, seen)
    print(f"--- while the build runs:\n{live}")
    assert "0 of 1 images done" in live
    row = next(line for line in live.splitlines() if "quoting role 1 of 1" in line)
    assert len(row) == 100  # the live view spans the terminal, its clock at the right edge
    assert estimate in live
    while not exit_file.exists() and time.monotonic() < deadline:
        seen.append(screen(tmux))
        time.sleep(0.1)
    assert exit_file.read_text().strip() == "0"
    final = screen(tmux)
    print(f"--- when it ended:\n{final}")
    assert "1 of 1 images done" in final
    assert re.search(r"✓ quoting +done: [0-9a-f]{12} rolecast-test/quoting:test +\d:\d\d\n", final)
    assert not any("rolecast_stage" in text for text in seen)
    assert not any(STAMPED.match(line) for line in final.splitlines())
