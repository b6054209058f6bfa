"""Runs one program for `rolecast` so that it stops cleanly however `rolecast` ends.

    python -m orchestrator.guard PARENT_PID [--log FILE] [--cleanup JSON_ARGV] -- PROGRAM...

The guard relays the program's output lines. When `rolecast` dies (even by SIGKILL), the
guard interrupts the program as Ctrl-C would: Packer then removes its build container and
tags nothing. It learns of the death twice over: the kernel sends it SIGTERM (a
parent-death signal), and it sees its parent change. Output that can no longer be
delivered goes to `--log` instead of killing the program with SIGPIPE mid-clean-up.

When the program ends, whatever it started and left running is killed, so nothing acts on
a build that is over: its process group, and also what left the group. Ansible's workers
start sessions of their own and hold Packer's output open, so the guard is their
subreaper and finds every process below it. The guard exits with the program's status,
or 128+N if signal N killed it.

`--cleanup` is a command (a JSON list) run after the program when rolecast is gone (the
engine removes the build container with it). `Guard` builds this command line for
`runner.run`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE = 60.0  # seconds the program gets to clean up before it is killed
DRAIN = 10.0  # seconds to read the last output once everything below the guard is gone
TICK = 0.5  # seconds between looks at the parent while waiting for a signal
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
WATCHED = STOP_SIGNALS | {signal.SIGCHLD}  # taken synchronously by the main thread


@dataclass(frozen=True)
class Guard:
    """How to keep one program under the guard: where its last words go, and what to run
    after it if rolecast is gone."""

    log: Path | None = None
    cleanup: tuple[str, ...] = ()

    def command(self, program: list[str]) -> list[str]:
        argv = [sys.executable, "-m", "orchestrator.guard", str(os.getpid())]
        if self.log is not None:
            argv += ["--log", str(self.log)]
        if self.cleanup:
            argv += ["--cleanup", json.dumps(list(self.cleanup))]
        return [*argv, "--", *program]


def _prctl(option: int, value: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the guard still watches its parent and the program's group


def _unblock() -> None:
    # The guard takes its signals synchronously (blocked); what it runs must get them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)


def _prepare_child() -> None:
    # If the guard itself is killed, the program must not run on unwatched.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _unblock()
    # Ctrl-C must reach it even when rolecast was started with SIGINT ignored (a
    # background job of a non-interactive shell is).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Output:
    """Relays the program's lines to rolecast; once rolecast is gone, to the log."""

    def __init__(self, stream: IO[bytes], log: Path | None) -> None:
        self.stream = stream
        self.log_path = log
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        out = sys.stdout.buffer
        delivering = True
        log = None
        for line in self.stream:
            if delivering:
                try:
                    out.write(line)
                    out.flush()
                    continue
                except (BrokenPipeError, OSError):
                    delivering = False  # rolecast is gone: keep draining, into its log
                    if self.log_path is not None:
                        log = self.log_path.open("ab", buffering=0)
            if log is not None:
                log.write(b"(rolecast gone) " + line)
        if log is not None:
            log.close()


def _descendants(root: int) -> list[int]:
    """Every live process below `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _end_everything_below(group: int) -> None:
    """Kills the program's group and every process that left it, and reaps them all: as
    their subreaper, the guard inherits the ones whose parents die."""
    _signal_group(group, signal.SIGKILL)
    deadline = time.monotonic() + GRACE  # a process stuck in the kernel is left behind
    while time.monotonic() < deadline:
        for pid in _descendants(os.getpid()):
            _signal(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG) != (0, 0):
                pass
        except ChildProcessError:
            return  # no child left, so nothing below the guard either
        signal.sigtimedwait({signal.SIGCHLD}, TICK)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.guard",
        usage="%(prog)s PARENT_PID [--log FILE] [--cleanup JSON_ARGV] -- PROGRAM...",
    )
    parser.add_argument("parent", type=int)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--cleanup", type=json.loads, default=[])
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    program = argv[split + 1 :]
    if not program:
        parser.error("no program to run (give it after --)")
    parent: int = args.parent
    # Blocked before any thread starts, so every thread inherits the mask and the main
    # thread alone takes the signals, whatever the others are blocked in.
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        child = subprocess.Popen(
            program,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_prepare_child,
        )
    except FileNotFoundError:
        print(f"{program[0]}: not found", flush=True)
        return 127
    assert child.stdout is not None
    output = _Output(child.stdout, args.log)
    code = _watch(child, parent)
    _end_everything_below(child.pid)
    # Once nothing below the guard is left, nothing holds the output open: the last lines
    # come at once. The bound is for a holder the guard cannot see.
    output.thread.join(DRAIN)
    if args.cleanup and os.getppid() != parent:
        # rolecast is gone, so nobody else removes what the program may have left (Packer
        # does not always remove a container it killed): the guard does.
        try:
            subprocess.run(
                args.cleanup, capture_output=True, timeout=GRACE, check=False, preexec_fn=_unblock
            )
        except subprocess.TimeoutExpired:
            pass
    return 128 - code if code < 0 else code


def _watch(child: subprocess.Popen[bytes], parent: int) -> int:
    """Waits for the program to end, interrupting it when rolecast asks (SIGINT), dies
    (SIGTERM, or a new parent) or a time limit stops it; killing it after GRACE."""
    kill_at: float | None = None
    while True:
        code = child.poll()
        if code is not None:
            return code
        if kill_at is not None and time.monotonic() >= kill_at:
            _signal_group(child.pid, signal.SIGKILL)
        received = signal.sigtimedwait(WATCHED, TICK)
        if received is not None and received.si_signo == signal.SIGCHLD:
            continue  # the program (or an orphan the guard inherited) changed state
        orphaned = os.getppid() != parent and kill_at is None
        if received is None and not orphaned:
            continue
        # SIGTERM comes from a dead rolecast (or a time limit): interrupt as Ctrl-C does.
        signum = signal.SIGINT if received is None else received.si_signo
        _signal_group(child.pid, signal.SIGINT if signum == signal.SIGTERM else signum)
        if kill_at is None:
            kill_at = time.monotonic() + GRACE


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
