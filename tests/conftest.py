"""Shared fixtures. Engine tests fail, never skip, when CI is set and the engine is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"engine test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A Docker SDK client for a live engine, with packer on PATH."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        _unavailable(f"no Docker engine answers: {exc}")
    if shutil.which("packer") is None:
        _unavailable("packer is not on PATH")
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def no_volumes_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test project is a new checkout with apt cache volumes of its own: they go with
    the session (by their checkout label), as `cache prune --volumes` removes a gone one's."""
    yield
    import docker
    from docker.errors import DockerException

    from orchestrator.names import CHECKOUT_LABEL

    base = str(tmp_path_factory.getbasetemp().resolve())
    try:
        client = docker.from_env(timeout=30)
        for volume in client.volumes.list(filters={"label": CHECKOUT_LABEL}):
            checkout = (volume.attrs.get("Labels") or {}).get(CHECKOUT_LABEL, "")
            if checkout.startswith(base + os.sep):
                volume.remove(force=True)
    except DockerException:
        pass  # no engine: no volumes were made


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke `rolecast` in-process from the repository root; returns typer's Result."""
    monkeypatch.chdir(ROOT)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the example project, for tests that edit files."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("roles", "playbooks", "inventories"):
        shutil.copytree(ROOT / name, dest / name)
    for name in ("rolecast.yml", "ansible.cfg"):
        shutil.copy2(ROOT / name, dest / name)
    return dest
