"""-e/--extra-vars through real builds: they reach the roles over every other variable,
make the image stale when they change, and a secret given by -e stays off disk and argv."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DATA
from .helpers import copy_project, remove_images, rolecast, run_in

pytestmark = pytest.mark.engine

IMAGE = "rolecast-test/greeter:extravars"


@pytest.fixture
def project(tmp_path: Path, docker_engine: Any) -> Iterator[Path]:
    root = copy_project(DATA / "projects" / "extravars", tmp_path / "project")
    # A token of this test's in ansible.cfg (an input of every stage): nothing is reused.
    (root / "ansible.cfg").write_text(f"# test {secrets.token_hex(8)}\n[defaults]\n")
    yield root
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=root).stdout or "[]")
    remove_images(docker_engine, IMAGE, *[s["reference"] for s in stages])


def _leaks(root: Path, secret: str) -> list[str]:
    return [
        str(path)
        for path in (root / ".rolecast").rglob("*")
        if path.is_file() and secret in path.read_text(errors="replace")
    ]


def test_extra_vars_reach_the_roles_and_the_fingerprint_and_secrets_stay_hidden(
    project: Path, tmp_path: Path, docker_engine: Any
) -> None:
    secret = f"s3cret-{secrets.token_hex(8)}"
    (tmp_path / "extra.yml").write_text("colour: from-file\n")
    given = ["-e", "greeting=hello", "-e", f"token={secret}", "-e", "@extra.yml"]
    given += ["-e", '{"number": 41}']
    # -C and the -e file relative to the working directory, as ansible-playbook reads it.
    built = rolecast("-C", str(project), "-v", "build", "--json", *given, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    # The gate's second run (through ansible-runner) got the same -e.
    notes = json.loads(built.stdout)["images"][0]["notes"]
    assert "idempotence: no task changed on a second run" in notes
    greeting = run_in(docker_engine, IMAGE, "cat", "/etc/greeting", user="root")
    assert greeting.splitlines() == [
        "greeting=hello",  # over the inventory's group_vars
        f"token={secret}",
        "colour=from-file",  # over the spec's image vars
        "site=green",
        "number=42",  # YAML/JSON keeps its types
    ]
    # While Packer and ansible-playbook ran, no process had the secret in its argv.
    argv_check = run_in(docker_engine, IMAGE, "cat", "/etc/argv-check", user="root")
    assert argv_check.split() == ["clean", "seen", "shown"]
    assert _leaks(project, secret) == []
    build_dir = project / ".rolecast" / "build" / "greeter"
    assert f"@{build_dir / 'extra-vars-2.json'}" in (build_dir / "template.pkr.json").read_text()
    lookups = json.loads((build_dir / "extra-vars-2.json").read_text())
    assert lookups == {"token": "{{ lookup('env', 'ROLECAST_EV_1') | from_json }}"}
    assert secret not in built.stdout + built.stderr  # -v: every argv rolecast runs is logged
    assert "run: packer build" in built.stderr
    inspected = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, text=True, check=True
    )
    assert secret not in inspected.stdout

    fresh = rolecast("-C", str(project), "plan", "--json", *given, cwd=tmp_path)
    assert json.loads(fresh.stdout)[0]["status"] == "fresh", fresh.stderr

    other = [*given[:1], "greeting=bye", *given[2:]]
    stale = rolecast("-C", str(project), "plan", "--json", *other, cwd=tmp_path)
    plan = json.loads(stale.stdout)[0]
    assert (plan["status"], plan["reason"]) == ("stale", "-e: greeting changed")
    first_fingerprint = docker_engine.images.get(IMAGE).labels["io.rolecast.fingerprint"]
    rebuilt = rolecast("-C", str(project), "build", "--plain", *other, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    greeting = run_in(docker_engine, IMAGE, "cat", "/etc/greeting", user="root")
    assert greeting.splitlines()[0] == "greeting=bye"
    assert docker_engine.images.get(IMAGE).labels["io.rolecast.fingerprint"] != first_fingerprint
    assert _leaks(project, secret) == []

    # Three changes at once: plan --explain names each of them.
    task = project / "roles" / "greet" / "tasks" / "main.yml"
    task.write_text(task.read_text() + "\n# a comment is a change\n")
    group_vars = project / "inventory" / "group_vars" / "all.yml"
    group_vars.write_text(group_vars.read_text().replace("green", "blue"))
    three = [*given[:1], "greeting=third", *given[2:]]
    explained = rolecast("-C", str(project), "plan", "--explain", *three, cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    for change in (
        "roles/greet/tasks/main.yml changed",
        "inventory/group_vars/all.yml: site_colour changed",
        "-e: greeting changed",
    ):
        assert change in explained.stdout
