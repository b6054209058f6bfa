"""A build on Podman: its API service for Rolecast's calls, Packer's docker builder through
the docker shim Rolecast writes. Runs in every run of scripts/test as root, which starts
Podman's service beside Docker (ROLECAST_PODMAN_HOST), and with ROLECAST_ENGINE=podman,
where Podman is the engine of every engine test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.build.cache import forget_checkouts, gone
from orchestrator.engines import connect
from orchestrator.engines.podman import PodmanEngine
from orchestrator.engines.podman_cli import podman_argv

from ..conftest import _unavailable

pytestmark = pytest.mark.engine

BASE = "rolecast/debian-bookworm:bookworm"
NOTE = 'made by "marker" on podman'


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanEngine]:
    """The Podman service: the engine of the run (ROLECAST_ENGINE=podman), or the one
    scripts/test starts beside Docker (ROLECAST_PODMAN_HOST), chosen for this module."""
    address = os.environ.get("ROLECAST_PODMAN_HOST")
    if os.environ.get("ROLECAST_ENGINE") == "podman":
        address = os.environ.get("DOCKER_HOST")
    if not address:
        _unavailable("no Podman service: scripts/test starts one as root (ROLECAST_PODMAN_HOST)")
    assert address is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", address)
        patch.setenv("ROLECAST_ENGINE", "podman")
        engine = connect(timeout=120)
        if not isinstance(engine, PodmanEngine):
            _unavailable(f"the engine at {engine.address} is not Podman")
        assert isinstance(engine, PodmanEngine)
        if shutil.which("packer") is None or shutil.which("podman") is None:
            _unavailable("packer and podman must be on PATH")
        if engine.image(BASE) is None:
            _unavailable(f"{BASE} is not in Podman (scripts/setup.sh loads it)")
        yield engine
        # The session's clean-up sees the run's engine (Docker, beside): these stages go here,
        # with what earlier runs' checkouts, gone since, left on Podman.
        base = str(tmp_path_factory.getbasetemp().resolve()) + os.sep
        forget_checkouts(engine, lambda checkout: checkout.startswith(base) or gone(checkout))


def write_project(root: Path, registry: str) -> None:
    (root / "roles" / "marker" / "tasks").mkdir(parents=True)
    (root / "roles" / "marker" / "tasks" / "main.yml").write_text(
        textwrap.dedent("""\
            - name: Mark the image
              ansible.builtin.copy:
                content: "marked\\n"
                dest: /etc/marker
                mode: "0644"
            - name: Make the work directory
              ansible.builtin.file:
                path: /srv/marker
                state: directory
                mode: "0755"
            """)
    )
    (root / "rolecast.yml").write_text(
        textwrap.dedent(f"""\
            version: 1
            defaults:
              registry: {registry}
              base: debian-bookworm
            bases:
              debian-bookworm:
                suite: bookworm
            images:
              marker:
                roles: [marker]
                config:
                  cmd: [cat, /etc/marker]
                  workdir: /srv/marker
                  env:
                    NOTE: '{NOTE}'
                  labels:
                    com.example.note: '{NOTE}'
            """)
    )


def test_an_image_builds_on_podman(podman: PodmanEngine, tmp_path: Path) -> None:
    registry = f"localhost:5999/podman-{uuid.uuid4().hex[:8]}"
    write_project(tmp_path, registry)
    rolecast = [sys.executable, "-m", "orchestrator", "-C", str(tmp_path)]
    reference = f"{registry}/marker:latest"
    try:
        done = subprocess.run(
            [*rolecast, "build", "--progress", "plain"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        image = podman.image(reference)
        assert image is not None
        assert image.id.startswith("sha256:")
        assert image.cmd == ["cat", "/etc/marker"]
        assert image.labels["com.example.note"] == NOTE
        assert image.labels["io.rolecast.image"] == "marker"
        podman_cli = podman_argv(podman.address)
        config = subprocess.run(
            [*podman_cli, "image", "inspect", reference, "--format",
             "{{.Config.WorkingDir}}|{{range .Config.Env}}{{.}};{{end}}"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        workdir, env = config.split("|")
        assert workdir == "/srv/marker"
        assert f"NOTE={NOTE}" in env.split(";")
        ran = subprocess.run(
            [*podman_cli, "run", "--rm", reference],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.stdout == "marked\n", ran.stderr
        again = subprocess.run(
            [*rolecast, "build", "--progress", "plain"], capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0 and "fresh" in again.stdout, again.stdout + again.stderr
        assert [c.name for c in podman.containers(name_prefix="rolecast-")] == []
    finally:
        podman.remove_image(reference)
