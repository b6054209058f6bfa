"""The build history: records survive many writers at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from contextlib import closing
from pathlib import Path

from orchestrator.history import SCHEMA, History


def _write(root: str, index: int) -> None:
    history = History(Path(root))
    for n in range(10):
        record = history.start(f"image{index}", f"fp{n}", ["image"])
        history.finish(record, "built", stages_run=["commit"], roles_run=["r"], image_id="x")


def test_concurrent_writers_keep_the_database_whole(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write, args=(str(tmp_path), i)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    history = History(tmp_path)
    records = history.records(limit=1000)
    assert len(records) == 40
    assert all(r.result == "built" and r.stages_run == ["commit"] for r in records)
    with sqlite3.connect(history.path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_records_of_one_image_newest_first(tmp_path: Path) -> None:
    history = History(tmp_path)
    first = history.start("web", "a", [])
    history.finish(first, "failed", error="boom")
    second = history.start("web", "b", ["image"])
    history.start("app", "c", [])
    records = history.records(["web"])
    assert [r.id for r in records] == [second, first]
    assert records[0].result == "running" and records[0].finished is None
    assert records[1].error == "boom" and records[1].duration is not None
    assert History(tmp_path / "nothing").records() == []


def test_unfinished_lists_only_the_images_running_records(tmp_path: Path) -> None:
    history = History(tmp_path)
    killed = history.start("web", "f1", [])
    done = history.start("web", "f2", [])
    history.finish(done, "built")
    other = history.start("app", "f3", [])
    assert [r.id for r in history.unfinished("web")] == [killed]
    assert [r.id for r in history.unfinished("app")] == [other]
    history.finish(killed, "interrupted")
    assert history.unfinished("web") == []


def test_last_durations_are_of_each_images_newest_successful_build(tmp_path: Path) -> None:
    history = History(tmp_path)
    assert history.last_durations() == {}
    rows = [
        ("web", "built", 100.0, 170.0),
        ("web", "built", 200.0, 230.0),  # the newest built: 30 s
        ("web", "failed", 300.0, 301.0),
        ("web", "running", 400.0, None),
        ("app", "fresh", 100.0, 100.5),  # kept fresh: no build to time
    ]
    for image, result, started, finished in rows:
        record = history.start(image, "fp", [])
        with sqlite3.connect(history.path) as db:
            db.execute(
                "UPDATE builds SET result = ?, started = ?, finished = ? WHERE id = ?",
                (result, started, finished, record),
            )
    assert history.last_durations() == {"web": 30.0}


def test_a_database_from_before_phase_timings_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / ".rolecast" / "history.db"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA.replace(",\n    phases TEXT NOT NULL DEFAULT '{}'", ""))
    history = History(tmp_path)
    record = history.start("app", "f1", [])
    history.set_phases(record, {"start": 1.5, "role one": 2.0})
    assert history.records(["app"])[0].phases == {"start": 1.5, "role one": 2.0}
