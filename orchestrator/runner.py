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
    "podman": "podman is not installed: see README, Podman (Debian: apt-get install podman)",
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
    shown = [str(a) for a in argv]
    log.debug("run: %s", shlex.join(shown))
    args = guard.command(shown) if guard is not None else list(shown)
    started = time.monotonic()
    proc = _spawn(args, shown, stdin=stdin, env=env, cwd=cwd, pass_fds=pass_fds)
    timed_out = threading.Event()
    timer = threading.Timer(timeout, _expire, (proc, grace, timed_out))
    timer.daemon = True
    timer.start()
    finished = threading.Event()
    if cancel is not None:
        threading.Thread(
            target=_watch_cancel, args=(proc, cancel, finished, grace), daemon=True
        ).start()
    try:
        returncode, tail = _drain(proc, on_line, log_file, grace)
    finally:
        finished.set()
        timer.cancel()
    if cancel is not None and cancel.is_set():
        raise KeyboardInterrupt
    if timed_out.is_set():
        raise CommandTimeoutError(
            f"{what or shown[0]} did not finish within {timeout:.0f} s and was stopped"
            + (f"; log: {log_file}" if log_file else "")
        )
    result = Result(shown, returncode, tail, time.monotonic() - started)
    if check and returncode != 0:
        raise CommandFailedError(shown, returncode, tail, what)
    return result


def _spawn(
    args: list[str],
    shown: list[str],
    *,
    stdin: IO[bytes] | int | None,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    pass_fds: Sequence[int],
) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
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


def _interrupt(proc: subprocess.Popen[str], sig: int, grace: float) -> None:
    """Signal the child's group, give it `grace` seconds, then kill the group."""
    _stop(proc, sig, True)
    if proc.poll() is None:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGKILL, True)


def _expire(proc: subprocess.Popen[str], grace: float, timed_out: threading.Event) -> None:
    timed_out.set()
    _interrupt(proc, signal.SIGTERM, grace)


def _watch_cancel(
    proc: subprocess.Popen[str], cancel: threading.Event, finished: threading.Event, grace: float
) -> None:
    while not finished.is_set():
        if cancel.wait(0.2):
            _interrupt(proc, signal.SIGINT, grace)
            return


def _drain(
    proc: subprocess.Popen[str],
    on_line: Callable[[str], None] | None,
    log_file: Path | None,
    grace: float,
) -> tuple[int, list[str]]:
    """Every line of the child's output to the log and `on_line`; its exit code and the
    last lines. Interrupted here (Ctrl-C), the child gets SIGINT and `grace` first."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
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
        return proc.wait(), list(tail)
    except BaseException:
        _interrupt(proc, signal.SIGINT, grace)
        proc.wait()
        raise
    finally:
        if sink:
            sink.close()


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
