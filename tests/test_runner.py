"""The subprocess runner: streaming, tails, time limits, missing programs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import CommandFailedError, CommandTimeoutError, ToolMissingError
from orchestrator.runner import capture, run


def test_streams_lines_to_callback_and_log(tmp_path: Path) -> None:
    seen: list[str] = []
    log = tmp_path / "run.log"
    result = run(
        [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr)"],
        timeout=30,
        on_line=seen.append,
        log_file=log,
    )
    assert result.returncode == 0
    assert sorted(seen) == ["one", "two"]
    assert sorted(log.read_text().splitlines()) == ["one", "two"]


def test_failure_carries_exit_code_and_tail() -> None:
    with pytest.raises(CommandFailedError) as info:
        run(
            [sys.executable, "-c", "print('partial'); print('boom'); raise SystemExit(4)"],
            timeout=30,
            what="the thing",
        )
    assert info.value.returncode == 4
    assert info.value.tail == ["partial", "boom"]
    assert str(info.value) == "the thing (exit 4): boom"


def test_unchecked_failure_returns_result() -> None:
    result = run([sys.executable, "-c", "raise SystemExit(3)"], timeout=30, check=False)
    assert result.returncode == 3


def test_time_limit_stops_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid));"
        "print('started', flush=True); time.sleep(60)"
    )
    with pytest.raises(CommandTimeoutError, match="did not finish within 1 s"):
        run([sys.executable, "-c", script], timeout=1, grace=5)
    child = int(marker.read_text())
    # The grandchild was in the same process group and got the signal too: it ends long
    # before its own 60 s sleep would (polled, as a loaded machine may take a moment).
    deadline = time.monotonic() + 20
    while alive(child):
        assert time.monotonic() < deadline, "the grandchild outlived the time limit"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_missing_program_is_a_tool_error() -> None:
    with pytest.raises(ToolMissingError, match="packer is not installed: see README, Setup"):
        run(["/nonexistent/bin/packer", "version"], timeout=5)


def test_capture_returns_none_on_failure() -> None:
    assert capture([sys.executable, "-c", "print('hi')"]) == "hi\n"
    assert capture([sys.executable, "-c", "raise SystemExit(1)"]) is None
    assert capture(["/nonexistent/tool"]) is None
