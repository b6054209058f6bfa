"""Packer 1.7 and later: the pinned docker and ansible plugins, installed with `packer init`
when missing, and the commands to run when they cannot be fetched. Against a stand-in for
a current Packer (tests/data/fake-packer/packer): only Debian's Packer 1.6.6, with both
plugins built in, can be installed here; `packer validate` runs only where a real current
Packer is on PATH."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator import packer_plugins, render
from orchestrator.errors import ToolMissingError
from orchestrator.names import PACKER_PLUGIN_DEFAULTS
from orchestrator.tools import packer_version

from .conftest import DATA
from .test_render import make_input

FAKE = DATA / "fake-packer"


@pytest.fixture
def current_packer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake Packer 1.11.2 first on PATH, plugins in a directory of the test's; the
    file its calls are written to."""
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")  # first: it wins
    monkeypatch.setenv("PACKER_PLUGIN_PATH", str(tmp_path / "plugins"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # Packer's version, asked
    calls = tmp_path / "calls"
    monkeypatch.setenv("FAKE_PACKER_CALLS", str(calls))
    return calls


def test_missing_plugins_are_installed_by_packer_init_once(
    current_packer: Path, tmp_path: Path
) -> None:
    assert packer_version() == (1, 11, 2)
    wanted = packer_plugins.pinned({"ansible": "1.1.9"})
    assert [(p.name, p.version) for p in wanted] == [
        ("docker", PACKER_PLUGIN_DEFAULTS["docker"]),
        ("ansible", "1.1.9"),
    ]
    assert all(packer_plugins.installed(p) is None for p in wanted)
    done = packer_plugins.ensure(wanted, (1, 11, 2), tmp_path / "work")
    assert done == wanted
    assert [line.split()[0] for line in current_packer.read_text().splitlines()] == [
        "version",
        "init",
    ]
    assert all(packer_plugins.installed(p) for p in wanted)
    assert packer_plugins.ensure(wanted, (1, 11, 2), tmp_path / "work") == []  # nothing missing
    assert current_packer.read_text().count("init") == 1
    assert packer_plugins.installed_versions()["ansible"] == ["1.1.9"]


def test_packer_1_6_has_them_built_in_and_runs_no_init(
    current_packer: Path, tmp_path: Path
) -> None:
    assert packer_plugins.ensure(packer_plugins.pinned(), (1, 6, 6), tmp_path / "work") == []
    assert not current_packer.exists()


def test_without_network_the_error_names_the_commands_to_run(
    current_packer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PACKER_OFFLINE", "1")
    with pytest.raises(ToolMissingError) as caught:
        packer_plugins.ensure(packer_plugins.pinned(), (1, 11, 2), tmp_path / "work")
    text = str(caught.value)
    docker, ansible = PACKER_PLUGIN_DEFAULTS["docker"], PACKER_PLUGIN_DEFAULTS["ansible"]
    assert f"  packer plugins install github.com/hashicorp/docker v{docker}" in text.splitlines()
    assert f"  packer plugins install github.com/hashicorp/ansible v{ansible}" in text.splitlines()
    assert "no such host" in text
    assert str(tmp_path / "plugins") in text  # where to copy them instead


def test_build_without_network_exits_3_before_asking_the_engine(
    current_packer: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.setenv("FAKE_PACKER_OFFLINE", "1")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # never reached
    result = cli("build", "--plain", "base")
    assert result.exit_code == 3, result.output
    docker = PACKER_PLUGIN_DEFAULTS["docker"]
    assert f"packer plugins install github.com/hashicorp/docker v{docker}" in result.stderr
    assert "docker engine" not in result.stderr


def test_version_lists_the_plugins_installed(current_packer: Path, cli: Any) -> None:
    result = cli("--version")
    assert "packer 1.11.2" in result.stdout.splitlines()
    assert "packer-plugins docker not installed, ansible not installed" in result.stdout
    packer_plugins.ensure(packer_plugins.pinned(), (1, 11, 2), Path(current_packer.parent / "w"))
    docker, ansible = PACKER_PLUGIN_DEFAULTS["docker"], PACKER_PLUGIN_DEFAULTS["ansible"]
    result = cli("--version")
    assert f"packer-plugins docker {docker}, ansible {ansible}" in result.stdout.splitlines()


def test_the_spec_pins_plugin_versions_and_refuses_a_range(tmp_path: Path) -> None:
    from orchestrator.errors import SpecError
    from orchestrator.spec import load_spec

    spec = "version: 1\npacker_plugins:\n  ansible: 1.1.9\nimages:\n  a: {from: debian:12}\n"
    (tmp_path / "rolecast.yml").write_text(spec)
    assert load_spec(tmp_path).spec.packer_plugins.ansible == "1.1.9"
    (tmp_path / "rolecast.yml").write_text(spec.replace("1.1.9", "'>= 1.1'"))
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path)
    assert "packer_plugins.ansible" in str(caught.value)


@pytest.mark.skipif(
    (packer_version() or (0,)) < packer_plugins.FIRST_SEPARATE,
    reason="no Packer 1.7 or later on PATH (only Debian's 1.6.6 installs here)",
)
def test_a_current_packer_validates_the_rendered_template(tmp_path: Path) -> None:
    version = packer_version()
    assert version is not None
    data = render.template(make_input(packer_version=version))
    (tmp_path / "template.pkr.json").write_text(json.dumps(data))
    init = subprocess.run(["packer", "init", "."], cwd=tmp_path, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    done = subprocess.run(
        ["packer", "validate", "-syntax-only", "template.pkr.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
