"""Runs one program for `rolecast` so that it stops cleanly however `rolecast` ends.

    python -m orchestrator.guard PARENT_PID -- PROGRAM [ARGS...]

The guard relays the program's output lines. When `rolecast` dies (even by SIGKILL), the
kernel sends the guard SIGTERM (a parent-death signal) and the guard interrupts the
program as Ctrl-C would: Packer then removes its build container and tags nothing. Output
that can no longer be delivered is dropped instead of killing the program with SIGPIPE
mid-clean-up. When the program ends, whatever it left running in its process group
(an orphaned ansible-playbook, a `docker exec`) is killed, so nothing acts on a build
that is over. The guard exits with the program's status, or 128+N if signal N killed it.

Environment: ROLECAST_GUARD_LOG, a file that gets the lines rolecast can no longer read;
ROLECAST_GUARD_CLEANUP, a JSON argv run after the program when rolecast is gone (the
engine removes the build container with it).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

PR_SET_PDEATHSIG = 1
GRACE = 60.0  # seconds the program gets to clean up before it is killed


def _set_parent_death_signal(sig: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: a killed rolecast leaves the program to finish on its own


def _prepare_child() -> None:
    # If the guard itself is killed, the program must not run on unwatched.
    _set_parent_death_signal(signal.SIGKILL)
    # Ctrl-C must reach it even when rolecast was started with SIGINT ignored (a
    # background job of a non-interactive shell is).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m orchestrator.guard PARENT_PID -- PROGRAM [ARGS...]")
        return 2
    parent = int(argv[0])
    log_path = os.environ.get("ROLECAST_GUARD_LOG")
    _set_parent_death_signal(signal.SIGTERM)
    try:
        child = subprocess.Popen(
            argv[2:],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_prepare_child,
        )
    except FileNotFoundError:
        print(f"{argv[2]}: not found", flush=True)
        return 127
    stopping = threading.Event()

    def kill_later() -> None:
        if not stopping.wait(GRACE):
            _signal_group(child.pid, signal.SIGKILL)

    def forward(signum: int, _frame: FrameType | None) -> None:
        # SIGTERM comes from a dead rolecast (or a time limit): interrupt as Ctrl-C does.
        _signal_group(child.pid, signal.SIGINT if signum == signal.SIGTERM else signum)
        threading.Thread(target=kill_later, daemon=True).start()

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    if os.getppid() != parent:  # rolecast died before the death signal was armed
        forward(signal.SIGTERM, None)

    codes: list[int] = []

    def reap() -> None:
        codes.append(child.wait())
        stopping.set()
        # What the program left in its group (an ansible-playbook still holding the output
        # pipe) must not act on a build that is over, nor keep the guard waiting.
        _signal_group(child.pid, signal.SIGKILL)

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    assert child.stdout is not None
    out = sys.stdout.buffer
    delivering = True
    for line in child.stdout:
        if delivering:
            try:
                out.write(line)
                out.flush()
            except (BrokenPipeError, OSError):
                delivering = False  # rolecast is gone: keep draining, into its log
        if not delivering and log_path:
            with open(log_path, "ab") as log:
                log.write(b"(rolecast gone) " + line)
    reaper.join()
    code = codes[0]
    cleanup = os.environ.get("ROLECAST_GUARD_CLEANUP")
    if cleanup and os.getppid() != parent:
        # rolecast is gone, so nobody else removes what the program may have left (Packer
        # does not always remove a container it killed): the guard does.
        subprocess.run(json.loads(cleanup), capture_output=True, timeout=GRACE, check=False)
    return 128 - code if code < 0 else code


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
