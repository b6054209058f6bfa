"""The front door stays light: `rolecast --help`, a command's --help and the command line's
modules import none of the heavy parts (Ansible, the Docker SDK, Jinja2, pydantic, rich,
the spec, the project, the build); each command imports what it needs when it runs.

Not timed (a loaded machine would make it flaky): the imports themselves are checked, as
`python -X importtime` lists them, so a heavy import put back at the top of a module of
orchestrator/cli/ fails here by name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

HEAVY = {"ansible", "docker", "jinja2", "pydantic", "pydantic_core", "rich", "yaml", "requests"}
HEAVY |= {"paramiko", "markdown_it", "ansible_runner"}
# What the command line itself may load before a command runs: its own modules, the error
# family, where the spec is, the registry credentials it takes from the environment, and
# the check of -H / DOCKER_HOST.
LIGHT = {"orchestrator", "orchestrator.errors", "orchestrator.specfile", "orchestrator.credentials"}
LIGHT |= {"orchestrator.engines", "orchestrator.engines.address", "orchestrator.engines.interface"}


def imported(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> set[str]:
    """Every module a Python run imports, as `-X importtime` reports them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ) | (env or {}),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, re.M)
    assert "typer" in names, done.stderr[-2000:]  # the listing is there at all
    return set(names)


def too_heavy(modules: set[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    """The packages and modules of ours that should have waited for a command to need
    them (import them inside that command's function)."""
    heavy = {m.split(".")[0] for m in modules} & (HEAVY - allowed)
    ours = {m for m in modules if m.split(".")[0] == "orchestrator"} - LIGHT
    ours = {m for m in ours if not m.startswith("orchestrator.cli")}
    return sorted(heavy | ours)


def test_importing_the_command_line_loads_no_heavy_module(tmp_path: Path) -> None:
    modules = imported(["-c", "import orchestrator.cli.app"], tmp_path)
    assert "orchestrator.cli.building" in modules  # every command module is loaded
    assert too_heavy(modules) == []


def test_rolecast_help_loads_no_heavy_module(tmp_path: Path) -> None:
    assert too_heavy(imported(["-m", "orchestrator", "--help"], tmp_path)) == []


@pytest.mark.parametrize("command", [["build"], ["plan"], ["cache", "ls"]], ids=" ".join)
def test_a_command_s_help_loads_no_heavy_module(command: list[str], tmp_path: Path) -> None:
    """The app's callback runs before a command's --help: it must stay light too (with
    DOCKER_HOST set, it checks the address). Typer itself converts option values with
    pydantic (typer 0.29), so pydantic is allowed here, and only here."""
    env = {"DOCKER_HOST": "unix:///var/run/docker.sock"}
    modules = imported(["-m", "orchestrator", *command, "--help"], tmp_path, env)
    assert too_heavy(modules, allowed=frozenset({"pydantic", "pydantic_core"})) == []


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The check itself can fail: a module that imports the spec is caught by name."""
    modules = imported(["-c", "import typer, orchestrator.cli.app, orchestrator.spec"], tmp_path)
    assert "orchestrator.spec" in too_heavy(modules)
    assert "pydantic" in too_heavy(modules)


LATER_SSH = """
import sys
import orchestrator.engines.docker
assert "paramiko" not in sys.modules, "paramiko loaded with the SDK"
import docker
if sys.argv[1] == "import":
    from docker.transport.sshconn import SSHSocket  # another user of the module
    import paramiko
    assert SSHSocket.__module__ == "docker.transport.sshconn"
else:
    try:  # an ssh:// client: the real transport's paramiko tries to log in
        docker.APIClient(base_url="ssh://nobody@127.0.0.1:1", timeout=5)
    except Exception as exc:
        assert "paramiko" not in str(exc), exc
import docker.transport.sshconn as sshconn
import paramiko
assert sshconn.paramiko is paramiko and hasattr(sshconn, "SSHConnectionPool")
assert docker.transport.SSHHTTPAdapter is sshconn.SSHHTTPAdapter
assert docker.api.client.SSHHTTPAdapter is sshconn.SSHHTTPAdapter
from orchestrator.engines.docker import _failures
assert paramiko.SSHException in _failures()
"""


@pytest.mark.parametrize("first", ["client", "import"])
def test_the_docker_sdk_s_ssh_transport_loads_when_first_used(first: str, tmp_path: Path) -> None:
    """Only ssh:// engines use paramiko: the SDK's ssh transport waits for a use, and that
    use (or any later importer) gets the real, complete module."""
    done = subprocess.run(
        [sys.executable, "-c", LATER_SSH, first],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_quick_exit_keeps_every_byte_of_output_and_the_exit_code(tmp_path: Path) -> None:
    """`rolecast` leaves without the interpreter's teardown: what it printed must still
    all arrive, through a pipe, and its exit code stay what the command said."""
    run = [sys.executable, "-m", "orchestrator", "-C", str(ROOT)]
    listed = subprocess.run([*run, "ls", "--json"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert {i["name"] for i in json.loads(listed.stdout)} >= {"base", "app"}
    unknown = subprocess.run([*run, "build", "no-such-image"], capture_output=True, text=True)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("unknown image 'no-such-image'")
