"""What a user writes by hand for Packer: the pieces the benchmarks' templates share."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

CACHE = Path.home() / ".cache" / "rolecast-bench"
COLLECTION = "ansible_collections/community/docker/"


def ansible_provisioner(playbook: Path, roles: Path) -> dict[str, Any]:
    """The ansible provisioner with its defaults (the SSH proxy adapter), plus the options
    OpenSSH 9 needs to accept Packer's RSA host key and scp."""
    return {
        "ansible": {
            "playbook_file": str(playbook),
            "extra_arguments": [
                "--ssh-extra-args=-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa",
                "--scp-extra-args=-O",
            ],
            "ansible_env_vars": [
                f"ANSIBLE_ROLES_PATH={roles}",
                "ANSIBLE_HOST_KEY_CHECKING=False",
                "ANSIBLE_SSH_TRANSFER_METHOD=scp",
            ],
        }
    }


def docker_run_command(container: str) -> list[str]:
    """Packer's default `run_command` for the docker builder, plus the container's name
    that the docker connection needs (Packer's ansible provisioner documentation, Docker)."""
    return ["-d", "-i", "-t", "--name", container, "--entrypoint=/bin/sh", "--", "{{.Image}}"]


def docker_provisioner(
    playbook: Path, roles: Path, container: str, collections: Path
) -> dict[str, Any]:
    """The ansible provisioner as Packer's documentation suggests for the docker builder:
    `ansible_connection=docker` to the named container, instead of SSH through the proxy.
    `collections` holds community.docker, whose connection plugin that is."""
    return {
        "ansible": {
            "playbook_file": str(playbook),
            "extra_arguments": [
                "--extra-vars",
                f"ansible_host={container} ansible_connection=docker",
            ],
            "ansible_env_vars": [
                f"ANSIBLE_ROLES_PATH={roles}",
                f"ANSIBLE_COLLECTIONS_PATH={collections}",
            ],
        }
    }


class Collection(NamedTuple):
    path: Path | None  # a collections directory (ANSIBLE_COLLECTIONS_PATH); None: not had
    version: str | None
    how: str  # what was done to have it, or why it cannot be had


def community_docker() -> Collection:
    """A collections directory with community.docker (the docker connection plugin, which
    ansible-core does not ship), and what was done to have it.

    Taken once from the `ansible` distribution on PyPI that goes with the installed
    ansible-core (Ansible Galaxy may be out of reach), into ~/.cache/rolecast-bench: only
    the benchmark's template runs use it, the project does not depend on it."""
    core = version("ansible-core")
    major, minor = (int(part) for part in core.split(".")[:2])
    target = CACHE / f"collections-core{major}.{minor}"
    manifest = target / COLLECTION / "MANIFEST.json"
    if manifest.is_file():
        return Collection(target, _version(manifest), f"cached in {target}")
    # ansible N ships with ansible-core 2.(N+7): 12 with 2.19, 11 with 2.18.
    wanted = f"ansible>={minor - 7},<{minor - 6}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--dest", tmp, wanted]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return Collection(None, None, f"pip download {wanted}: no answer in 10 minutes")
        wheels = list(Path(tmp).glob("ansible-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            return Collection(None, None, f"pip download {wanted} failed: {tail}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [name for name in wheel.namelist() if name.startswith(COLLECTION)]
            if not members:
                return Collection(None, None, f"{wheels[0].name} holds no community.docker")
            staging = Path(tmp) / "collections"
            wheel.extractall(staging, members)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    how = f"taken from {wheels[0].name} (pip download --no-deps, for ansible-core {core})"
    return Collection(target, _version(manifest), f"{how} into {target}")


def _version(manifest: Path) -> str:
    return str(json.loads(manifest.read_text())["collection_info"]["version"])
