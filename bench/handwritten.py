"""What a user writes by hand for Packer: the pieces both benchmarks' templates share."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
