"""apt's lists on a project's first build: the bootstrap fetches them in the background
while Ansible starts, and the play waits for them before its first role. A role that
installs with apt and never refreshes the lists (as on a VM) works on the first build."""

from __future__ import annotations

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
