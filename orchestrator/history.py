"""Every build, recorded in `.rolecast/history.db` (SQLite, write-ahead log).

A record is written when an image's build starts (result `running`) and completed when
it ends, so a build that was killed leaves a record that says so. Several `rolecast`
processes may write at once: SQLite's locking serialises the writes, and each write is
one short transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HISTORY_FILE = Path(".rolecast") / "history.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    result TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    stages_run TEXT NOT NULL DEFAULT '[]',
    stages_reused TEXT NOT NULL DEFAULT '[]',
    roles_run TEXT NOT NULL DEFAULT '[]',
    image_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    log TEXT,
    error TEXT,
    pid INTEGER NOT NULL,
    pushed TEXT NOT NULL DEFAULT '[]',
    phases TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS builds_image ON builds (image, started);
"""


@dataclass
class Record:
    id: int
    image: str
    fingerprint: str
    result: str
    started: float
    finished: float | None
    stages_run: list[str] = field(default_factory=list)
    stages_reused: list[str] = field(default_factory=list)
    roles_run: list[str] = field(default_factory=list)
    image_id: str | None = None
    tags: list[str] = field(default_factory=list)
    log: str | None = None
    error: str | None = None
    pid: int = 0
    pushed: list[dict[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image": self.image,
            "fingerprint": self.fingerprint,
            "result": self.result,
            "started": self.started,
            "finished": self.finished,
            "duration": None if self.duration is None else round(self.duration, 3),
            "stages_run": self.stages_run,
            "stages_reused": self.stages_reused,
            "roles_run": self.roles_run,
            "image_id": self.image_id,
            "tags": self.tags,
            "log": self.log,
            "error": self.error,
            "pid": self.pid,
            "pushed": self.pushed,
            "phases": self.phases,
        }


class History:
    def __init__(self, root: Path) -> None:
        self.path = root / HISTORY_FILE
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the History's one connection, which the build's threads
        share. A connection a write would cost a checkpoint and an fsync each time the
        last one closes (~15 ms); commits sync only at checkpoints (synchronous NORMAL in
        WAL mode: a killed process loses nothing, a crash of the machine may lose the
        newest records)."""
        with self._lock:
            if self._db is None:
                self._db = self._open()
            with self._db:  # committed on success, rolled back on error
                yield self._db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        self._prepare(db)
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Switch to WAL and create the table, one process at a time: SQLite does not wait
        on a busy database to change its journal mode, it fails at once."""
        import fcntl

        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            with db:
                db.executescript(SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(builds)")}
                if "pushed" not in columns:  # a database from before pushes were recorded
                    db.execute("ALTER TABLE builds ADD COLUMN pushed TEXT NOT NULL DEFAULT '[]'")
                if "phases" not in columns:  # ... or before phases were timed
                    db.execute("ALTER TABLE builds ADD COLUMN phases TEXT NOT NULL DEFAULT '{}'")

    def start(self, image: str, fingerprint: str, stages_reused: list[str]) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO builds (image, fingerprint, result, started, stages_reused, pid) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (image, fingerprint, time.time(), json.dumps(stages_reused), os.getpid()),
            )
            return int(cursor.lastrowid or 0)

    def finish(
        self,
        record: int,
        result: str,
        *,
        stages_run: list[str] | None = None,
        roles_run: list[str] | None = None,
        image_id: str | None = None,
        tags: list[str] | None = None,
        log: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE builds SET result = ?, finished = ?, stages_run = ?, roles_run = ?, "
                "image_id = ?, tags = ?, log = ?, error = ? WHERE id = ?",
                (
                    result,
                    time.time(),
                    json.dumps(stages_run or []),
                    json.dumps(roles_run or []),
                    image_id,
                    json.dumps(tags or []),
                    log,
                    error,
                    record,
                ),
            )

    def set_pushed(self, record: int, pushed: list[dict[str, str]]) -> None:
        """The tags a build pushed, each with its digest."""
        with self._connect() as db:
            db.execute("UPDATE builds SET pushed = ? WHERE id = ?", (json.dumps(pushed), record))

    def set_phases(self, record: int, phases: dict[str, float]) -> None:
        """The seconds the build spent in each phase."""
        with self._connect() as db:
            db.execute("UPDATE builds SET phases = ? WHERE id = ?", (json.dumps(phases), record))

    def unfinished(self, image: str) -> list[Record]:
        """Records of `image` still `running`: under the image's build lock, builds whose
        process was killed."""
        return self.records([image], limit=-1, result="running")

    def record(self, record: int) -> Record | None:
        if not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute("SELECT * FROM builds WHERE id = ?", (record,)).fetchone()
        return None if row is None else _record(row)

    def last_durations(self) -> dict[str, float]:
        """Seconds the newest successful build of each image took: the estimate of its next."""
        if not self.path.exists():
            return {}
        with self._connect() as db:
            rows = db.execute(
                "SELECT image, finished - started, MAX(started) FROM builds "
                "WHERE result = 'built' AND finished IS NOT NULL GROUP BY image"
            ).fetchall()
        return {image: float(seconds) for image, seconds, _ in rows}

    def records(
        self, images: list[str] | None = None, limit: int = 50, result: str | None = None
    ) -> list[Record]:
        """The newest records first, of the named images or of all, with that result or
        any; `limit` -1 is no limit."""
        if not self.path.exists():
            return []
        where: list[str] = []
        args: list[Any] = []
        if images:
            where.append(f"image IN ({','.join('?' * len(images))})")
            args += images
        if result is not None:
            where.append("result = ?")
            args.append(result)
        query = "SELECT * FROM builds"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY started DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._connect() as db:
            rows = db.execute(query, args).fetchall()
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> Record:
    return Record(
        id=row["id"],
        image=row["image"],
        fingerprint=row["fingerprint"],
        result=row["result"],
        started=row["started"],
        finished=row["finished"],
        stages_run=json.loads(row["stages_run"]),
        stages_reused=json.loads(row["stages_reused"]),
        roles_run=json.loads(row["roles_run"]),
        image_id=row["image_id"],
        tags=json.loads(row["tags"]),
        log=row["log"],
        error=row["error"],
        pid=row["pid"],
        pushed=json.loads(row["pushed"]),
        phases=json.loads(row["phases"]),
    )
