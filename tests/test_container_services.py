"""The in-container service manager's bookkeeping: what a systemctl command line starts,
which services the play started, and the notes it writes. Stopping real services is
tested against real builds in tests/engine/test_services.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.container import services


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "services.jsonl"
    monkeypatch.setattr(services, "LOG", str(path))
    monkeypatch.setattr(services, "RECORDS", str(tmp_path))
    return path


def write(path: Path, *entries: dict[str, Any]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def start(unit: str, code: int = 0, active: bool = True) -> dict[str, Any]:
    return {"event": "start", "unit": unit, "action": "start", "code": code, "active": active}


def test_parse_finds_the_action_and_units_past_options() -> None:
    assert services.parse(["start", "postgresql@15-main"]) == (
        "start",
        ["postgresql@15-main.service"],
    )
    assert services.parse(["--no-block", "-p", "MainPID", "restart", "a.socket", "b"]) == (
        "restart",
        ["a.socket", "b.service"],
    )
    assert services.parse(["--quiet"]) == ("", [])


def test_started_units_keeps_first_start_order_and_ignores_timers(log: Path) -> None:
    write(
        log,
        start("cron.service"),
        start("logrotate.timer"),
        start("pg.service"),
        start("cron.service"),
    )
    assert services.started_units() == ["cron.service", "pg.service"]


def test_report_names_each_service_how_it_ended_and_what_to_look_at(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        log,
        start("db.service"),
        start("web.service"),
        start("legacy.service", active=False),
        start("stubborn.service"),
        {"event": "kill", "unit": "stubborn.service", "seconds": 20, "output": ""},
        {"event": "stop", "unit": "web.service", "code": 0},
        {"event": "stop", "unit": "db.service", "code": 0},
        {"event": "stray", "pid": 42, "command": "sleep 3000", "killed": False},
    )
    assert services.report() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "rolecast: services started during the play: db.service (running, stopped cleanly), "
        "web.service (running, stopped cleanly), legacy.service (not running when stopped), "
        "stubborn.service (killed: it did not stop in time)"
    )
    assert lines[1:] == [
        "rolecast: warning: start legacy.service reported success but the service was not "
        "running (a VM's systemd would show the unit failed)",
        "rolecast: warning: service stubborn.service did not stop within 20 s and was killed",
        "rolecast: warning: process 42 was left running outside the service manager and was "
        "stopped: sleep 3000",
    ]


def test_report_says_nothing_when_the_play_started_no_service(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert services.report() == 0
    assert capsys.readouterr().out == ""


def test_enable_now_is_recorded_as_a_start(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[list[str]] = []

    def fake_call(argv: list[str]) -> int:
        called.append(argv)
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    monkeypatch.setattr(services, "left_below_init", lambda: {})
    monkeypatch.setattr(services, "is_active", lambda unit: True)
    assert services.systemctl(["enable", "--now", "memcached"]) == 0
    assert services.systemctl(["enable", "cron"]) == 0
    assert called[0][-3:] == ["enable", "--now", "memcached"]
    assert services.started_units() == ["memcached.service"]
