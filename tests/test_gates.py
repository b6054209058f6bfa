"""Gates read ansible-runner's events: failures and changes, named by role, task and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import gates
from orchestrator.errors import SpecError
from orchestrator.spec import load_spec

ROOT = Path("/p")


def event(kind: str, **data: object) -> dict[str, object]:
    return {"event": kind, "event_data": data}


def test_changed_tasks_are_named_once_with_their_file() -> None:
    events = [
        event("runner_on_ok", task="Gathering Facts", res={"changed": False}),
        event(
            "runner_on_ok",
            role="nonidem",
            task="Append",
            task_path="/p/roles/nonidem/tasks/main.yml:8",
            res={"changed": True},
        ),
        event(
            "runner_on_ok",
            role="nonidem",
            task="Append",
            task_path="/p/roles/nonidem/tasks/main.yml:8",
            res={"changed": True},
        ),
        event("runner_on_ok", task="Play task", task_path="/elsewhere/x.yml:3", res={"changed": 1}),
    ]
    assert gates.changed_tasks(events, ROOT) == [
        "role nonidem, task 'Append' (roles/nonidem/tasks/main.yml:8)",
        "task 'Play task' (/elsewhere/x.yml:3)",
    ]


def test_failure_message_skips_ignored_errors() -> None:
    events = [
        event("runner_on_failed", task="Probe", ignore_errors=True, res={"msg": "meh"}),
        event(
            "runner_on_failed",
            task="The marker names chef",
            task_path="/p/playbooks/verify.yml:11",
            res={"msg": "the marker does not name chef", "assertion": "x"},
        ),
    ]
    assert gates.failure_message(events, ROOT) == (
        "task 'The marker names chef' (playbooks/verify.yml:11): the marker does not name chef"
    )
    assert gates.failure_message(events[:1], ROOT) is None


def test_unreachable_counts_as_a_failure() -> None:
    events = [event("runner_on_unreachable", task="Gathering Facts", res={"msg": "gone"})]
    assert gates.failure_message(events, ROOT) == "task 'Gathering Facts': gone"


def test_inventory_text_puts_the_build_host_in_its_groups() -> None:
    assert gates.inventory_text("rolecast-web", ["webservers", "staging"]) == (
        "[webservers]\nrolecast-web\n\n[staging]\nrolecast-web\n\n"
    )
    assert gates.inventory_text("rolecast-web", []) == "rolecast-web\n"


def test_verify_needs_exactly_one_kind_of_check(tmp_path: Path) -> None:
    (tmp_path / "rolecast.yml").write_text(
        "version: 1\nimages:\n  a:\n    from: debian:12\n    verify: {run: true}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert str(info.value) == (
        "rolecast.yml:5:13 images.a.verify: set either 'playbook' or 'commands'"
    )


def test_a_service_start_in_the_second_container_is_not_a_change() -> None:
    started = event(
        "runner_on_ok",
        role="vmrole",
        task="Start cron",
        task_action="ansible.builtin.service",
        res={"changed": True, "state": "started", "status": {"enabled": {"changed": False}}},
    )
    newly_enabled = event(
        "runner_on_ok",
        role="vmrole",
        task="Enable cron",
        task_action="ansible.builtin.service",
        res={"changed": True, "state": "started", "status": {"enabled": {"changed": True}}},
    )
    templated = event(
        "runner_on_ok",
        role="vmrole",
        task="Template",
        task_action="ansible.builtin.template",
        res={"changed": True, "state": "started"},
    )
    assert gates.changed_tasks([started, newly_enabled, templated], ROOT) == [
        "role vmrole, task 'Enable cron'",
        "role vmrole, task 'Template'",
    ]


def test_sysvinit_results_say_what_changed_in_their_status() -> None:
    started = event(
        "runner_on_ok",
        task="Start cron",
        task_action="ansible.builtin.service",
        res={
            "changed": True,
            "name": "cron",
            "status": {"enabled": {"changed": False}, "started": {"changed": True}},
        },
    )
    assert gates.changed_tasks([started], ROOT) == []
