"""The build container's command, PID 1 of the build: it reaps what daemons leave, so
that a stop command waiting for a daemon's PID to vanish does not wait on a zombie."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.container import services
from orchestrator.provision import KEEP_ALIVE, KEEP_ALIVE_MARK

PR_SET_CHILD_SUBREAPER = 36


def as_pid_one() -> None:
    """In the child, before exec: orphans of its descendants come to it, as to PID 1."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def children(pid: int) -> dict[int, tuple[str, str]]:
    """{pid: (command name, state)} of the processes whose parent is `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            head, _, tail = stat.rpartition(")")
            fields = tail.split()
            if int(fields[1]) == pid:
                found[int(entry.name)] = (head.partition("(")[2], fields[0])
    return found


def daemon_reaped(command: str, fifo: Path) -> bool:
    """Run `command` as PID 1 would run it, after a daemon has forked away from its
    starter (so that it is PID 1's orphan); make the daemon exit, then say whether its
    zombie is reaped (within 10 s, by polling its state; a zombie never reaped stays)."""
    os.mkfifo(fifo)
    with subprocess.Popen(
        ["/bin/sh", "-c", f"( cat {fifo} >/dev/null & ) ; {command}"],
        stdin=subprocess.PIPE,  # never written: `read` waits as an idle terminal shell does
        stdout=subprocess.DEVNULL,
        preexec_fn=as_pid_one,
        start_new_session=True,
    ) as shell:
        deadline = time.monotonic() + 10

        def orphan() -> list[str]:
            return [state for name, state in children(shell.pid).values() if name == "cat"]

        writer = None
        while writer is None and time.monotonic() < deadline:
            try:  # open once the daemon reads it
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.01)
        while orphan() != ["S"] and time.monotonic() < deadline:
            time.sleep(0.01)  # the daemon's starter has exited: the daemon is the shell's
        assert writer is not None and orphan(), "the daemon never came to the shell"
        os.close(writer)  # the daemon reads end of file and exits
        while orphan() and time.monotonic() < deadline:
            if orphan() == ["Z"] and command.startswith("read"):
                break  # a shell waiting on its input: the zombie stays for good
            time.sleep(0.01)
        reaped = not orphan()
        os.killpg(shell.pid, signal.SIGKILL)  # the shell and its sleep
    return reaped


def test_the_keep_alive_command_reaps_the_orphans_of_daemons(tmp_path: Path) -> None:
    assert daemon_reaped(KEEP_ALIVE, tmp_path / "daemon")


def test_a_shell_waiting_on_its_terminal_leaves_them_zombies(tmp_path: Path) -> None:
    # What the build container ran before: the check above can tell the difference.
    assert not daemon_reaped("read line", tmp_path / "daemon")


def test_the_service_manager_knows_the_keep_alive_sleep_is_no_service() -> None:
    marked = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env={**os.environ, KEEP_ALIVE_MARK.split("=")[0]: "1"},
    )
    plain = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert services.keeps_alive(marked.pid)
        assert not services.keeps_alive(plain.pid)
        assert services.KEEP_ALIVE_MARK == KEEP_ALIVE_MARK.encode()
    finally:
        for process in (marked, plain):
            process.communicate(b"")
