"""`rolecast logs` and `rolecast history` on a recorded history: which log, which errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.history import History

from .test_one_build import write_project

FAILED = (
    "image app: role two, task 'Write two' failed at roles/two/tasks/main.yml:1: boom; "
    "log: .rolecast/logs/app-2.log"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose `app` was built (build 1), failed (2), then kept fresh (3)."""
    root = write_project(tmp_path)
    logs = root / ".rolecast" / "logs"
    logs.mkdir(parents=True)
    history = History(root)
    for number, (result, error) in enumerate([("built", None), ("failed", FAILED)], 1):
        (logs / f"app-{number}.log").write_text(f"log of build {number}\n")
        record = history.start("app", f"fp{number}", [])
        history.finish(record, result, log=f".rolecast/logs/app-{number}.log", error=error)
    history.finish(history.start("app", "fp2", ["image"]), "fresh")
    return root


def rolecast(root: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["-C", str(root), *args], catch_exceptions=False)


def test_logs_prints_the_newest_log_or_the_build_asked_for(project: Path) -> None:
    done = rolecast(project, "logs", "app")
    assert (done.exit_code, done.stdout) == (0, "log of build 2\n")  # build 3 ran no Packer
    done = rolecast(project, "logs", "app", "--build", "1")
    assert (done.exit_code, done.stdout) == (0, "log of build 1\n")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nope"], "unknown image 'nope'; images in rolecast.yml: app, child"),
        (["app", "--build", "99"], "no build 99 of app; `rolecast history app` lists its builds"),
        (["child", "--build", "1"], "no build 1 of child"),
        (["child"], "child was never built here; build it with `rolecast build child`"),
        (["app", "--build", "3"], "build 3 of app ran no Packer (fresh): it has no log"),
    ],
)
def test_logs_of_an_unknown_image_or_build_exit_2(
    project: Path, args: list[str], said: str
) -> None:
    done = rolecast(project, "logs", *args)
    assert done.exit_code == 2
    assert said in " ".join(done.stderr.split())


def test_a_deleted_log_is_named(project: Path) -> None:
    (project / ".rolecast" / "logs" / "app-2.log").unlink()
    done = rolecast(project, "logs", "app")
    assert done.exit_code == 1
    assert "the log of build 2 of app (.rolecast/logs/app-2.log) is gone" in done.stderr


def test_history_of_an_image_not_in_the_spec_exits_2_and_names_those_that_are(
    project: Path,
) -> None:
    done = rolecast(project, "history", "ap")
    assert done.exit_code == 2
    assert "unknown image 'ap' (did you mean 'app'?); images in rolecast.yml: app, child" in (
        " ".join(done.stderr.split())
    )


def test_history_shows_the_error_of_a_failed_build(project: Path) -> None:
    done = rolecast(project, "history", "app")
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert "ERROR" in lines[0]
    failed = next(line for line in lines if " failed " in line)
    assert failed.split()[0] == "2"
    assert failed.rstrip().endswith(
        "role two, task 'Write two' failed at roles/two/tasks/main.yml:1: boom"
    )
    records = json.loads(rolecast(project, "history", "--json", "app").stdout)
    assert [(r["id"], r["error"]) for r in records] == [(3, None), (2, FAILED), (1, None)]
