"""Locks between `rolecast` processes that share a project: one build of an image at a time.

A lock is an `flock` on `.rolecast/locks/<name>.lock`; the file says who holds it. The
kernel releases an flock when every process holding it is gone, so a crashed build never
leaves a lock that blocks forever: the next process takes it and says whose it was. The
lock's descriptor is passed to the Packer a build runs, so that a build whose `rolecast`
was killed still holds its image until that Packer has stopped and cleaned up.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

LOCK_DIR = Path(".rolecast") / "locks"
POLL = 0.5  # seconds between attempts while another process holds the lock


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    pid = holder.get("pid", "?")
    since = holder.get("since", "")
    host = holder.get("host", "")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"pid {pid}{where}" + (f" since {since}" if since else "")


class ProjectLock:
    """An exclusive lock on one thing of a project (an image, the requirements, a base).

    `say` gets a line when the lock is busy (whose it is) and when a lock left by a process
    that is gone is taken over. `cancel` (set by another thread on Ctrl-C) stops waiting.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        what: str,
        say: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> None:
        self.path = root / LOCK_DIR / f"{name}.lock"
        self.what = what
        self.say = say
        self.cancel = cancel or threading.Event()
        self.fd: int | None = None

    def _holder(self) -> dict[str, Any]:
        assert self.fd is not None
        try:
            text = os.pread(self.fd, 4096, 0).decode("utf-8", "replace").strip()
            found = json.loads(text) if text else {}
            return found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        waiting = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    holder = self._holder()
                    pid = int(holder.get("pid") or 0)
                    if pid and not pid_alive(pid):
                        self.say(
                            f"waiting: the build of {self.what} by {_describe(holder)} was "
                            "killed; its Packer is still stopping and cleaning up"
                        )
                    else:
                        self.say(f"waiting: {self.what} is locked by {_describe(holder)}")
                    waiting = True
                if self.cancel.wait(POLL):
                    os.close(self.fd)
                    self.fd = None
                    raise KeyboardInterrupt from None
        left = self._holder()
        if left.get("pid") and left.get("pid") != os.getpid():
            self.say(
                f"took over the lock of {self.what} left by {_describe(left)}, which did not "
                f"finish (the process is gone)"
            )
        if waiting:
            self.say(f"{self.what}: lock acquired")
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv)),
        }
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(me).encode(), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # released cleanly: nobody's to take over
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
