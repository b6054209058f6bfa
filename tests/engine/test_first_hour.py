"""A new user's mistakes stop `rolecast build` before any container starts (the engine's
own events say so), and the same project, fixed, builds an image that runs its roles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orchestrator.names import CONTAINER_PREFIX, project_identity

from ..firsthour import CASES, expected, make_project
from .helpers import remove_images, rolecast, run_in

pytestmark = pytest.mark.engine

TOOLBOX = "rolecast-test/firsthour/toolbox:latest"


def containers_created(client: Any, since: dt.datetime, project: Path) -> list[str]:
    """Names of the containers the engine created for the project since `since`."""
    prefix = f"{CONTAINER_PREFIX}{project_identity(project.resolve())}"
    events = client.events(
        since=since,
        until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        filters={"type": "container", "event": "create"},
        decode=True,
    )
    names = [e.get("Actor", {}).get("Attributes", {}).get("name", "") for e in events]
    return [n for n in names if n.startswith(prefix) or not n.startswith(CONTAINER_PREFIX)]


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_build_stops_on_bad_input_before_any_container(
    docker_engine: Any, cli: Any, case: Path, tmp_path: Path
) -> None:
    """In-process (the command is the same; a case costs no interpreter start)."""
    project = make_project(tmp_path / "project", case)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    done = cli("-C", str(project), "build", "--plain")
    assert done.exit_code == 2, done.stdout + done.stderr
    assert done.stderr.splitlines()[-len(expected(case)) :] == expected(case)
    assert containers_created(docker_engine, since, project) == []


def test_the_first_hour_project_builds_and_its_roles_ran(
    docker_engine: Any, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project")
    try:
        done = rolecast("build", "--plain", "toolbox", cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        motd = run_in(docker_engine, TOOLBOX, "cat", "/etc/motd")
        assert motd.splitlines() == [
            "== Welcome ==",
            "Be kind",
            "Back up often",
            "Managed by Ansible for ops.",
        ]
        assert run_in(docker_engine, TOOLBOX, "cat", "/etc/motd.owner") == "ops\n"
        config = docker_engine.images.get(TOOLBOX).attrs["Config"]
        assert config["Cmd"] == ["/bin/cat", "/etc/motd"]
    finally:
        remove_images(docker_engine, TOOLBOX)
        rolecast("cache", "prune", "--volumes", cwd=project)
