"""Roles whose services must run during the play, built unchanged.

The `vm` image's roles behave like the popular public ones: a PostgreSQL role that
restarts the server from a handler and creates a database and a user through it, an
Apache role restarted by its handler, and a simple-type unit with its own user that the
role waits for on its port. Other images leave a daemon outside the service manager,
start a service that ignores SIGTERM, and keep today's behaviour with `services: skip`.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DATA
from .helpers import copy_project, remove_images, rolecast

pytestmark = pytest.mark.engine

SERVICES = DATA / "projects" / "services"
REPOSITORY = "rolecast-test/services"
DATABASE_READY = (
    "for i in $(seq 120); do pg_isready -q && exit 0; sleep 0.5; done; "
    "echo 'PostgreSQL did not start' >&2; exit 1"
)
SYSTEM_RUNNING = (
    'for i in $(seq 120); do [ "$(systemctl is-system-running)" = running ] && exit 0; '
    "sleep 0.5; done; systemctl is-system-running; exit 1"
)
FETCH_PAGE = (
    "python3 - <<'EOF'\n"
    "import time, urllib.request\n"
    "for _ in range(150):\n"
    "    try:\n"
    "        print(urllib.request.urlopen('http://127.0.0.1:8080/').read().decode())\n"
    "        break\n"
    "    except OSError:\n"
    "        time.sleep(0.2)\n"
    "EOF"
)
# What the build's services and service manager must not leave behind.
RUNTIME_LEFTOVERS = (
    "find /run /var/run/ /tmp /var/tmp -xdev \\( -type s -o -name '*.pid' "
    "-o -name '*.status' -o -name '*.lock' \\) -print; "
    "ls -d /usr/sbin/systemctl /usr/sbin/journalctl /usr/local/sbin/rolecast-services "
    "/usr/local/lib/rolecast-build /var/lib/rolecast-build /run/systemd /var/log/journal "
    "/var/log/systemctl.log 2>/dev/null; true"
)


def build(project: Path, *images: str) -> dict[str, Any]:
    done = rolecast("build", "--plain", "--json", "-j", "2", *images, cwd=project, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return {i["name"]: i for i in json.loads(done.stdout)["images"]}


def notes(result: dict[str, Any]) -> str:
    return "\n".join(result["notes"])


def exec_in(container: Any, command: str, user: str = "root") -> str:
    code, output = container.exec_run(["/bin/sh", "-c", command], user=user)
    text = output.decode(errors="replace")
    assert code == 0, f"{command}: exit {code}: {text}"
    return str(text)


@pytest.fixture(scope="module")
def project(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = copy_project(SERVICES, tmp_path_factory.mktemp("services") / "services")
    # ansible.cfg is an input of every stage: this run's token keeps other runs' stages out.
    (root / "ansible.cfg").write_text(f"# run {uuid.uuid4().hex}\n[defaults]\n")
    yield root
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=root).stdout or "[]")
    remove_images(docker_engine, *[s["reference"] for s in stages])
    rolecast("cache", "prune", "--volumes", cwd=root)
    names = ("vm", "stray", "stubborn", "skipped", "vm-init")
    remove_images(docker_engine, *[f"{REPOSITORY}/{name}:test" for name in names])


@pytest.fixture(scope="module")
def built(project: Path) -> dict[str, Any]:
    return build(project, "vm", "stray", "stubborn", "skipped", "vm-init")


@pytest.fixture
def running(docker_engine: Any) -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for container in started:
        container.remove(force=True)


def test_services_run_during_the_play_and_stop_cleanly_before_the_commit(
    built: dict[str, Any],
) -> None:
    vm = built["vm"]
    said = notes(vm)
    # The idempotence gate ran the roles again against a container of the image.
    assert vm["result"] == "built"
    assert "services started during the play: " in said
    # Also what the packages' own scripts started, as on a VM (postgresql.service, cron).
    for unit in (
        "postgresql.service",
        "postgresql@15-main.service",
        "apache2.service",
        "echo.service",
    ):
        assert f"{unit} (running, stopped cleanly)" in said
    assert "left running outside the service manager" not in said
    assert "was killed" not in said and "reported success but" not in said


def database_owner(container: Any, database: str) -> str:
    """Who owns `database` in the container's running PostgreSQL (waited for)."""
    exec_in(container, DATABASE_READY, user="postgres")
    query = f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'"
    return exec_in(container, f'psql -tAc "{query}"', user="postgres").strip()


def test_database_image_answers_with_its_database_and_user_after_a_clean_start(
    built: dict[str, Any], docker_engine: Any, running: list[Any]
) -> None:
    container = docker_engine.containers.run(f"{REPOSITORY}/vm:test", detach=True)
    running.append(container)
    assert database_owner(container, "inventory") == "stock"
    log = container.logs().decode(errors="replace")
    assert "database system was shut down at" in log, log
    assert "not properly shut down" not in log and "automatic recovery" not in log, log


def read_file(container: Any, path: str) -> str:
    """A file of a container, also of one that has stopped."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        assert member is not None
        return member.read().decode(errors="replace")


def test_init_services_image_runs_what_its_roles_enabled_and_stops_them_on_docker_stop(
    built: dict[str, Any], docker_engine: Any, running: list[Any]
) -> None:
    container = docker_engine.containers.run(f"{REPOSITORY}/vm-init:test", detach=True)
    running.append(container)
    assert database_owner(container, "inventory") == "stock"
    assert "served by rolecast-vm" in exec_in(container, FETCH_PAGE)
    assert exec_in(container, "cat /proc/1/cmdline | tr '\\0' ' '").startswith(
        "/usr/bin/python3 /usr/local/lib/rolecast/systemctl3.py"
    )
    # Once every enabled unit has started, the manager waits for SIGTERM.
    exec_in(container, SYSTEM_RUNNING)
    container.stop(timeout=60)
    assert container.wait(timeout=90)["StatusCode"] != 137  # stopped, not killed
    log = read_file(container, "/var/log/postgresql/postgresql-15-main.log")
    assert log.rstrip().endswith("database system is shut down"), log[-2000:]


def test_web_server_image_serves_its_page(
    built: dict[str, Any], docker_engine: Any, running: list[Any]
) -> None:
    container = docker_engine.containers.run(
        f"{REPOSITORY}/vm:test", ["apache2ctl", "-D", "FOREGROUND"], detach=True
    )
    running.append(container)
    assert "served by rolecast-vm" in exec_in(container, FETCH_PAGE)


def test_no_runtime_file_or_service_manager_of_the_build_stays_in_the_image(
    built: dict[str, Any], docker_engine: Any, running: list[Any]
) -> None:
    for name in ("vm", "stray", "stubborn"):
        container = docker_engine.containers.run(
            f"{REPOSITORY}/{name}:test", ["sleep", "300"], entrypoint="", detach=True
        )
        running.append(container)
        assert exec_in(container, RUNTIME_LEFTOVERS).split() == [], name
    # What a daemon needs to start from the image's command stays: the unit's
    # RuntimeDirectory=, owned by its user, and the database's socket directory.
    kept = exec_in(running[0], "stat -c '%U %n' /run/echo /run/postgresql")
    assert kept.split("\n")[:2] == ["echo /run/echo", "postgres /run/postgresql"]


def test_a_daemon_left_outside_the_service_manager_is_found_and_named(
    built: dict[str, Any],
) -> None:
    said = notes(built["stray"])
    assert "was left running outside the service manager and was stopped: sleep 3000" in said


def test_a_service_that_ignores_sigterm_is_killed_and_named(built: dict[str, Any]) -> None:
    said = notes(built["stubborn"])
    assert built["stubborn"]["result"] == "built"
    assert "service stubborn.service did not stop within 20 s and was killed" in said


def test_services_skip_records_and_skips_as_before(built: dict[str, Any]) -> None:
    said = notes(built["skipped"])
    assert "service start/restart skipped, no init system runs in a build" in said
    assert "services started during the play" not in said


def test_a_resumed_build_finds_the_database_of_its_cached_stage(
    built: dict[str, Any], project: Path, docker_engine: Any, running: list[Any]
) -> None:
    spec = project / "rolecast.yml"
    echo = "      - role: echo\n        vars:\n          echo_greeting: welcome\n"
    spec.write_text(spec.read_text().replace("      - echo\n", echo, 1))
    vm = build(project, "vm")["vm"]
    # postgres and apache came from their stages
    assert vm["stages_reused"][-2:] == ["role postgres", "role apache"], vm
    assert "role echo" in vm["stages_run"], vm
    container = docker_engine.containers.run(f"{REPOSITORY}/vm:test", detach=True)
    running.append(container)
    exec_in(container, DATABASE_READY, user="postgres")
    found = exec_in(
        container, "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'stock'\"", user="postgres"
    )
    assert found.strip() == "1"
    assert exec_in(container, "cat /srv/echo/greeting.txt") == "welcome\n"
