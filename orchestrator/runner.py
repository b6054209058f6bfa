"""The one way Rolecast runs a program: logged argv, streamed lines, a time limit, clear errors."""

from __future__ import annotations

import collections
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CommandFailedError, CommandTimeoutError, ToolMissingError
from .guard import Guard

log = logging.getLogger("rolecast.run")

TAIL_LINES = 40
INSTALL_HINTS = {
    "packer": "packer is not installed: see README, Setup (Debian: apt-get install packer)",
    "docker": "docker is not installed: see README, Setup (Debian: apt-get install docker.io)",
    "debootstrap": "debootstrap is not installed: see README, Setup (apt-get install debootstrap)",
    "ansible-playbook": "ansible-playbook is missing: reinstall rolecast (pip install rolecast)",
}


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    tail: list[str]
    duration: float


def _stop(proc: subprocess.Popen[str], sig: int, own_group: bool) -> None:
    try:
        if own_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    on_line: Callable[[str], None] | None = None,
    log_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    check: bool = True,
    what: str = "",
    grace: float = 30.0,
    cancel: threading.Event | None = None,
    pass_fds: Sequence[int] = (),
    guard: Guard | None = None,
) -> Result:
    """Run `argv` to completion, streaming merged stdout/stderr lines to `on_line` and `log_file`.

    The child gets its own process group so that a time limit or an interrupt stops it and
    everything it started. On Ctrl-C the child first receives SIGINT and `grace` seconds to
    clean up (Packer removes its container then), and the KeyboardInterrupt is re-raised.
    `cancel`, set by another thread, has the same effect: a build running in a worker
    thread stops as if interrupted (Ctrl-C reaches only the main thread).
    With `guard`, it runs under `orchestrator.guard`: if this process is killed, the
    child is interrupted (and cleans up) instead of running on unwatched.
    `pass_fds` are descriptors the child inherits (a lock it holds until it ends).
    """
    args = [str(a) for a in argv]
    shown = list(args)
    log.debug("run: %s", shlex.join(args))
    if guard is not None:
        args = guard.command(args)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError:
        name = Path(shown[0]).name
        raise ToolMissingError(
            INSTALL_HINTS.get(name, f"{name} is not installed or not on PATH")
        ) from None

    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _stop(proc, signal.SIGTERM, True)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGKILL, True)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    finished = threading.Event()

    def watch_cancel() -> None:
        assert cancel is not None
        while not finished.is_set():
            if cancel.wait(0.2):
                _stop(proc, signal.SIGINT, True)
                if proc.poll() is None:
                    try:
                        proc.wait(grace)
                    except subprocess.TimeoutExpired:
                        _stop(proc, signal.SIGKILL, True)
                return

    if cancel is not None:
        threading.Thread(target=watch_cancel, daemon=True).start()
    sink = log_file.open("a", encoding="utf-8") if log_file else None
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if sink:
                sink.write(raw if raw.endswith("\n") else raw + "\n")
                sink.flush()
            if on_line:
                on_line(line)
        returncode = proc.wait()
    except BaseException:
        _stop(proc, signal.SIGINT, True)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGKILL, True)
            proc.wait()
        raise
    finally:
        finished.set()
        timer.cancel()
        if sink:
            sink.close()
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt
    duration = time.monotonic() - started
    if timed_out.is_set():
        raise CommandTimeoutError(
            f"{what or shown[0]} did not finish within {timeout:.0f} s and was stopped"
            + (f"; log: {log_file}" if log_file else "")
        )
    result = Result(shown, returncode, list(tail), duration)
    if check and returncode != 0:
        raise CommandFailedError(shown, returncode, list(tail), what)
    return result


def capture(argv: Sequence[str | Path], *, timeout: float = 30.0) -> str | None:
    """A short query (a version, a path): its stdout, or None when it cannot run or fails."""
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
