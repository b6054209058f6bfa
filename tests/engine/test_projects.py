"""Two checkouts of one project on one engine: each has its own stages and apt cache.

Both hold an image `web` whose inputs are identical, so their stage fingerprints are
equal: only the project's identity keeps one from reusing, pruning or locking the other's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.names import apt_volumes, project_identity

from ..conftest import DATA
from .helpers import ROLECAST, copy_project, remove_images, rolecast, run_in
from .test_publish import PASSWORD, USER, Registry

pytestmark = pytest.mark.engine

TWIN = DATA / "projects" / "twin"
IMAGE = "rolecast-test/twin/web:test"


def history(project: Path) -> dict[str, Any]:
    done = rolecast("history", "--json", "-n", "1", "web", cwd=project)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)[0])


def stages(project: Path) -> list[dict[str, Any]]:
    done = rolecast("cache", "ls", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def new_version(project: Path) -> None:
    template = project / "roles" / "site" / "templates" / "site.conf.j2"
    template.write_text(template.read_text().replace("version 1", "version 2"))


@pytest.fixture(scope="module")
def checkouts(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Three checkouts of the twin project; A and B built at the same time, from scratch."""
    token = f"# run {uuid.uuid4().hex}\n[defaults]\n"  # keeps other runs' stages out
    found = []
    for name in ("a", "b", "c"):
        project = copy_project(TWIN, tmp_path_factory.mktemp(f"twin-{name}") / "twin")
        (project / "ansible.cfg").write_text(token)
        found.append(project)
    yield found
    for project in found:
        remove_images(docker_engine, *[s["reference"] for s in stages(project)])
        rolecast("cache", "prune", "--volumes", cwd=project)
    remove_images(docker_engine, IMAGE)


def test_two_projects_build_one_image_name_at_once_each_with_its_own_apt_cache(
    checkouts: list[Path], docker_engine: Any
) -> None:
    a, b, _ = checkouts
    runs = [
        subprocess.Popen(
            [ROLECAST, "build", "--plain", "--json", "web"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for project in (a, b)
    ]
    outputs = [run.communicate(timeout=900) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
        assert "Could not get lock" not in stderr
        (result,) = json.loads(stdout)["images"]
        assert result["stages_reused"] == []
        assert result["stages_run"] == ["image", "role packages", "role site", "commit"]
    volumes = [set(apt_volumes(project_identity(p), "web")) for p in (a, b)]
    assert volumes[0].isdisjoint(volumes[1])
    for name in volumes[0] | volumes[1]:
        docker_engine.volumes.get(name)  # both projects' apt caches exist, apart
    assert run_in(docker_engine, IMAGE, "cat", "/etc/twin/site.conf") == "site twin, version 1\n"


def test_a_project_never_reuses_a_stage_another_project_built(checkouts: list[Path]) -> None:
    a, b, _ = checkouts
    for project in (a, b):
        new_version(project)
    done = rolecast("build", "--plain", "web", cwd=a)
    assert done.returncode == 0, done.stderr[-3000:]
    assert history(a)["roles_run"] == ["site"]
    # B's `role site` stage has the fingerprint A just built: B builds it all the same.
    done = rolecast("build", "--plain", "web", cwd=b)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(b)
    assert record["stages_reused"] == ["image", "role packages"]
    assert record["roles_run"] == ["site"]


def test_cache_prune_in_one_project_leaves_the_others_stages(checkouts: list[Path]) -> None:
    a, b, _ = checkouts
    theirs = {s["reference"] for s in stages(b)}
    ours = stages(a)
    old = [s for s in ours if not s["current"]]
    assert old, "the last test left A a stage of the older site template"
    done = rolecast("cache", "prune", cwd=a)
    assert done.returncode == 0, done.stderr
    assert {s["reference"] for s in stages(a)} == {s["reference"] for s in ours if s["current"]}
    assert {s["reference"] for s in stages(b)} == theirs
    assert any(not s["current"] for s in stages(b))  # B's own older stage: B's to prune


def test_only_cache_from_shares_stages_between_projects(
    checkouts: list[Path], tmp_path: Path
) -> None:
    a, _, c = checkouts
    new_version(c)  # C is now what A is
    registry = Registry(tmp_path)
    registry.start()
    try:
        env = {"ROLECAST_REGISTRY_USERNAME": USER, "ROLECAST_REGISTRY_PASSWORD": PASSWORD}
        shared = f"{registry.address}/team/stages"
        done = rolecast("build", "--plain", "--cache-to", shared, "web", cwd=a, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        done = rolecast("build", "--plain", "--json", "--cache-from", shared, "web", cwd=c, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        registry.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
    (result,) = json.loads(done.stdout)["images"]
    # A's image of the same fingerprint is in the shared cache: C pulls it, and only it.
    assert result["result"] == "fresh"
    assert result["stages_pulled"] == []
    assert f"fresh (registry): {shared}:web-{result['fingerprint'][:32]}" in result["notes"]
    assert history(c)["roles_run"] == []
