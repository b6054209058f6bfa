"""Runs one program for `rolecast` so that it stops cleanly however `rolecast` ends.

    python -m orchestrator.guard PARENT_PID [--log FILE] [--cleanup JSON_ARGV] -- PROGRAM...

The guard relays the program's output lines. When `rolecast` dies (even by SIGKILL), the
kernel sends the guard SIGTERM (a parent-death signal) and the guard interrupts the
program as Ctrl-C would: Packer then removes its build container and tags nothing. Output
that can no longer be delivered is dropped instead of killing the program with SIGPIPE
mid-clean-up. When the program ends, whatever it left running in its process group
(an orphaned ansible-playbook, a `docker exec`) is killed, so nothing acts on a build
that is over. The guard exits with the program's status, or 128+N if signal N killed it.

`--log` names a file that gets the lines rolecast can no longer read; `--cleanup` a
command (a JSON list) run after the program when rolecast is gone (the engine removes the
build container with it). `Guard` builds this command line for `runner.run`.
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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
GRACE = 60.0  # seconds the program gets to clean up before it is killed


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
    _set_parent_death_signal(signal.SIGTERM)
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
    log = None
    for line in child.stdout:
        if delivering:
            try:
                out.write(line)
                out.flush()
                continue
            except (BrokenPipeError, OSError):
                delivering = False  # rolecast is gone: keep draining, into its log
                if args.log is not None:
                    log = args.log.open("ab", buffering=0)
        if log is not None:
            log.write(b"(rolecast gone) " + line)
    if log is not None:
        log.close()
    reaper.join()
    code = codes[0]
    if args.cleanup and os.getppid() != parent:
        # rolecast is gone, so nobody else removes what the program may have left (Packer
        # does not always remove a container it killed): the guard does.
        subprocess.run(args.cleanup, capture_output=True, timeout=GRACE, check=False)
    return 128 - code if code < 0 else code


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
