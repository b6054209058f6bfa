"""Vaulted files tried with the vault password the build will use: a wrong password is
named before any work, not by Ansible mid-build. The secrets stay in this process."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import Problem
from ..spec import display_path
from .files import is_vaulted


def _sources(vault_arguments: Iterable[str]) -> tuple[list[str], list[str]]:
    """The vault ids and password files of `--vault-id=...`/`--vault-password-file=...`."""
    ids: list[str] = []
    files: list[str] = []
    for argument in vault_arguments:
        flag, _, value = argument.partition("=")
        if flag == "--vault-id":
            ids.append(value)
        elif flag == "--vault-password-file":
            files.append(value)
    return ids, files


def wrong_password_problems(
    paths: Iterable[Path], vault_arguments: Iterable[str], root: Path
) -> list[Problem]:
    """Each vaulted file none of the given vault secrets decrypts."""
    vaulted = [p for p in dict.fromkeys(paths) if is_vaulted(p)]
    ids, files = _sources(vault_arguments)
    if not vaulted or not (ids or files):
        return []
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultLib

    try:
        secrets = CLI.setup_vault_secrets(
            DataLoader(),
            ids,
            files,
            ask_vault_pass=False,
            auto_prompt=False,
            initialize_context=False,
        )
    except AnsibleError:
        return []  # a password source that fails is the build's to report, with its words
    vault = VaultLib(secrets)
    problems = []
    for path in vaulted:
        try:
            vault.decrypt(path.read_bytes())
        except AnsibleError:
            problems.append(
                Problem(
                    display_path(path, root),
                    1,
                    1,
                    "",
                    "encrypted with Ansible Vault, and no vault password given decrypts it: "
                    "check --vault-password-file / --vault-id",
                )
            )
    return problems
