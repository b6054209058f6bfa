"""The build lock between rolecast processes, and the guard that stops Packer cleanly when
rolecast dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from orchestrator.locks import ProjectLock

from .conftest import ROOT


def lock(root: Path, said: list[str], cancel: threading.Event | None = None) -> ProjectLock:
    return ProjectLock(root, "image-x", "image x", said.append, cancel)


def test_a_busy_lock_says_who_holds_it_and_is_taken_when_released(tmp_path: Path) -> None:
    first: list[str] = []
    second: list[str] = []
    waiting = threading.Event()
    holder = lock(tmp_path, first)
    holder.acquire()

    def say(text: str) -> None:
        second.append(text)
        waiting.set()

    waiter = ProjectLock(tmp_path, "image-x", "image x", say)
    thread = threading.Thread(target=waiter.acquire)
    thread.start()
    assert waiting.wait(30)
    assert second == [f"waiting: image x is locked by pid {os.getpid()} since " + second[0][-20:]]
    holder.release()
    thread.join(30)
    assert not thread.is_alive()
    assert second[-1] == "image x: lock acquired"
    assert not any("took over" in line for line in second)  # released cleanly
    waiter.release()
    assert (tmp_path / ".rolecast" / "locks" / "image-x.lock").read_text() == ""


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_message(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / ".rolecast" / "locks" / "image-x.lock"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": dead.pid, "since": "2026-01-01T00:00:00Z"}))
    said: list[str] = []
    with lock(tmp_path, said):
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid()
    assert said == [
        f"took over the lock of image x left by pid {dead.pid} since 2026-01-01T00:00:00Z, "
        "which did not finish (the process is gone)"
    ]


def test_waiting_for_a_lock_stops_on_cancel(tmp_path: Path) -> None:
    holder = lock(tmp_path, [])
    holder.acquire()
    cancel = threading.Event()
    said: list[str] = []
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            ProjectLock(tmp_path, "image-x", "image x", said.append, cancel).acquire()
        except KeyboardInterrupt as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    cancel.set()
    thread.join(30)
    assert len(errors) == 1
    holder.release()


def guard(
    *program: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.guard", str(os.getpid()), "--", *program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ) | (env or {}),
        timeout=timeout,
    )


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_guard_relays_output_and_exit_status() -> None:
    done = guard("sh", "-c", "echo one; echo two; exit 3")
    assert (done.stdout, done.returncode) == ("one\ntwo\n", 3)
    killed = guard("sh", "-c", "kill -KILL $$")
    assert killed.returncode == 128 + 9
    missing = guard("no-such-program-here")
    assert (missing.returncode, missing.stdout) == (127, "no-such-program-here: not found\n")


def test_guard_kills_what_the_program_left_running_when_it_ends() -> None:
    done = guard("sh", "-c", "sleep 300 & echo $!")
    assert done.returncode == 0
    assert gone(int(done.stdout.strip()))


def test_guard_ends_what_left_the_programs_group_and_holds_its_output() -> None:
    # Ansible's workers start sessions of their own and keep Packer's output open: the
    # guard must still end, and end them, when the program does.
    program = (
        "import os\n"
        "ready, told = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    os.write(told, b'x')\n"
        "    os.execvp('sleep', ['sleep', '300'])\n"
        "os.read(ready, 1)\n"  # the worker has its own session before the program ends
        "print(pid)\n"
    )
    done = guard(sys.executable, "-c", program, timeout=60)
    assert done.returncode == 0
    assert gone(int(done.stdout.strip()))


def test_a_killed_parent_gets_its_program_interrupted_and_cleaned_up(tmp_path: Path) -> None:
    interrupted = tmp_path / "interrupted"
    cleaned = tmp_path / "cleaned"
    cleanup = json.dumps(["sh", "-c", f"echo done > {cleaned}"])
    program = (
        f'trap "echo yes > {interrupted}; exit 3" INT; echo ready; while :; do sleep 0.1; done'
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys\n"
            "guard = subprocess.Popen([sys.executable, '-m', 'orchestrator.guard', "
            f"str(os.getpid()), '--cleanup', {cleanup!r}, '--', 'sh', '-c', {program!r}], "
            "stdout=subprocess.PIPE)\n"
            "print(guard.stdout.readline().decode().strip(), flush=True)\n"
            "guard.wait()\n",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == "ready"  # the program runs under its guard
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(30)
    deadline = time.monotonic() + 60
    while not cleaned.exists():  # the guard's clean-up runs after the program has ended
        assert time.monotonic() < deadline, "the guard never ran its clean-up"
        time.sleep(0.05)
    assert interrupted.read_text() == "yes\n"
