"""apt's lists on a project's first build: the bootstrap fetches them in the background
while Ansible starts, and the play waits for them before its first role. A role that
installs with apt and never refreshes the lists (as on a VM) works on the first build,
also on a parent without python3 (a slim image), where the bootstrap installs it first."""

from __future__ import annotations

import re
from typing import Any

import pytest

from orchestrator.names import apt_volumes, project_identity

from ..conftest import DATA
from .helpers import build_json, copy_project, remove_images, run_in

pytestmark = pytest.mark.engine

IMAGE = "rolecast-test/vmapt/tools:test"


def test_a_role_that_never_updates_apt_installs_on_the_first_build(
    docker_engine: Any, tmp_path: Any
) -> None:
    project = copy_project(DATA / "projects" / "vmapt", tmp_path / "vmapt")
    volumes = apt_volumes(project_identity(project), "tools")
    existing = {v.name for v in docker_engine.volumes.list()}
    assert not set(volumes) & existing  # a new project: no lists yet
    try:
        done, data = build_json("--plain", cwd=project)
        assert done.returncode == 0, done.stderr[-3000:]
        (image,) = data["images"]
        assert image["result"] == "built"
        assert run_in(docker_engine, IMAGE, "tree", "--version").startswith("tree v")
        log = (project / image["log"]).read_text()
        order = [
            log.index("TASK [Gathering Facts]"),
            log.index("TASK [rolecast: apt lists]"),
            log.index("TASK [tools : Install the tools]"),
        ]
        assert order == sorted(order), "the play waits for the lists before its first role"
        # What Ansible needed is not in the image: python3-apt came from the host's volume.
        check = "import importlib.util; print(importlib.util.find_spec('apt') is None)"
        assert run_in(docker_engine, IMAGE, "python3", "-c", check) == "True\n"
        assert image["phases"]["bootstrap"] > 0
    finally:
        remove_images(docker_engine, IMAGE)
        for volume in volumes:
            try:
                docker_engine.volumes.get(volume).remove()
            except Exception:  # not made, or in use by a leftover
                pass


def test_on_a_parent_without_python3_the_bootstrap_installs_it_and_the_lists_follow(
    docker_engine: Any, tmp_path: Any
) -> None:
    """python3 is installed with apt (and removed again at clean-up); the background
    fetch of the lists starts only after that install, never racing it for apt's lock."""
    slim = "rolecast-test/vmapt/slim:base"
    purge = (
        "dpkg-query -W -f '${Package}\\n' | grep -E '^(python3|libpython3)' "
        "| xargs apt-get purge -y -qq >/dev/null && ! command -v python3"
    )
    container = docker_engine.containers.run(
        "rolecast/debian-bookworm:bookworm", ["sh", "-c", purge], detach=True, entrypoint=""
    )
    try:
        assert container.wait()["StatusCode"] == 0, container.logs()[-2000:]
        container.commit(*slim.split(":"))
    finally:
        container.remove(force=True)
    project = copy_project(DATA / "projects" / "vmapt", tmp_path / "vmapt")
    spec = project / "rolecast.yml"
    spec.write_text(
        spec.read_text().replace("from: rolecast/debian-bookworm:bookworm", f"from: {slim}")
    )
    try:
        done, data = build_json("--plain", cwd=project)
        assert done.returncode == 0, done.stderr[-3000:]
        (image,) = data["images"]
        assert image["result"] == "built"
        log = (project / image["log"]).read_text()
        assert re.search(r"installed for Ansible: ?python3 python3-apt", log), log[-3000:]
        assert run_in(docker_engine, IMAGE, "tree", "--version").startswith("tree v")
        # python3 was there for Ansible only: the image is as slim as its parent
        assert run_in(docker_engine, IMAGE, "sh", "-c", "command -v python3 || echo none") == (
            "none\n"
        )
    finally:
        remove_images(docker_engine, IMAGE, slim)
        for volume in apt_volumes(project_identity(project), "tools"):
            try:
                docker_engine.volumes.get(volume).remove()
            except Exception:  # not made, or in use by a leftover
                pass
