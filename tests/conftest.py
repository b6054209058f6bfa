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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """ROLECAST_ENGINE=podman ./scripts/test runs the engine tests on Podman; those of
    Docker itself (marked `docker`: they start a second dockerd, or reach Docker over ssh)
    are skipped then, with the reason."""
    if os.environ.get("ROLECAST_ENGINE", "").strip().lower() != "podman":
        return
    reason = "a test of Docker itself; the engine tests run on Podman (ROLECAST_ENGINE=podman)"
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


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


@pytest.fixture(autouse=True)
def engine_kind_of_engine_tests_only(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROLECAST_ENGINE=podman ./scripts/test runs the engine tests on Podman; a unit test
    chooses its engine kind itself (or has none), whatever the shell gave."""
    if request.node.get_closest_marker("engine") is None:
        monkeypatch.delenv("ROLECAST_ENGINE", raising=False)


@pytest.fixture(scope="session", autouse=True)
def no_volumes_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test project is a new checkout with caches of its own (apt volumes, stages):
    they go with the session, and so do those of checkouts that are gone (an earlier
    clone of this repository, say), as `cache prune --volumes` removes them."""
    yield
    from orchestrator.build.cache import forget_checkouts, gone
    from orchestrator.engines import connect
    from orchestrator.errors import RolecastError

    base = str(tmp_path_factory.getbasetemp().resolve()) + os.sep
    try:
        forget_checkouts(connect(timeout=30), lambda c: c.startswith(base) or gone(c))
    except RolecastError:
        pass  # no engine: nothing was made


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
