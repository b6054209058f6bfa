"""The set-up really happened: a Docker engine answers and the demo's base image runs Python."""

from __future__ import annotations

import os
from typing import Any

import pytest

from orchestrator.project import load_project

from ..conftest import ROOT
from .helpers import engine_kind

pytestmark = pytest.mark.engine


def test_base_image_exists_and_runs_python(docker_engine: Any) -> None:
    project = load_project(ROOT)
    reference = project.base_reference("debian-bookworm")
    image = docker_engine.images.get(reference)
    assert image.labels["io.rolecast.base"] == "debian-bookworm"
    output = docker_engine.containers.run(
        reference, ["python3", "-c", "print(1)"], remove=True, network_disabled=True
    )
    assert output == b"1\n"


def test_version_reports_the_engine_and_packer(cli: Any, docker_engine: Any) -> None:
    result = cli("--version")
    engine = docker_engine.version()["Version"]
    address = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    kind = engine_kind()
    assert f"{kind} engine {engine} at {address}" in result.stdout.splitlines()
    assert "packer not found" not in result.stdout


def test_bases_keeps_a_present_base(cli: Any, docker_engine: Any) -> None:
    before = docker_engine.images.get("rolecast/debian-bookworm:bookworm").id
    result = cli("bases")
    assert result.exit_code == 0, result.stderr
    assert "is present" in result.stdout
    assert docker_engine.images.get("rolecast/debian-bookworm:bookworm").id == before
