"""The project's cache of inventory readings: an unchanged inventory is read without
Ansible, and every change of what Ansible's reading depends on is seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.fingerprint import image_manifest
from orchestrator.project import load_project
from orchestrator.project.inventory_view import CACHE_DIR, cache_key, from_manager

SPEC = """\
version: 1
inventory: inventory
images:
  web:
    from: example/base:1
    roles: [site]
    groups: [web]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    tasks = tmp_path / "roles" / "site" / "tasks"
    tasks.mkdir(parents=True)
    tasks.joinpath("main.yml").write_text(
        "- ansible.builtin.debug: {msg: '{{ workers }} {{ inline }} {{ greeting }}'}\n"
    )
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts").write_text("[web]\nweb1\n[site:children]\nweb\n[site:vars]\ninline=1\n")
    (inventory / "group_vars" / "web.yml").write_text("workers: 4\n")
    (tmp_path / "rolecast.yml").write_text(SPEC)
    return tmp_path


def fingerprints(root: Path) -> list[str]:
    project = load_project(root)
    manifest = image_manifest(project, project.images["web"], "sha256:parent")
    return [stage.fingerprint for stage in manifest.stages]


def kept(root: Path) -> list[Path]:
    return sorted((root / CACHE_DIR).glob("*.json"))


def test_a_kept_reading_gives_the_fingerprint_ansible_s_reading_gives(project: Path) -> None:
    cold = fingerprints(project)
    (entry,) = kept(project)
    assert json.loads(entry.read_text())["key"] == cache_key(project / "inventory", project)
    assert fingerprints(project) == cold
    view = from_manager(project / "inventory")
    assert set(view.groups) == {"all", "ungrouped", "web", "site"}
    assert set(view.hosts["web1"].groups) == {"web", "site", "all"}  # as Ansible gives them


def test_a_changed_group_vars_file_changes_the_fingerprint_through_the_cache(
    project: Path,
) -> None:
    before = fingerprints(project)
    key = cache_key(project / "inventory", project)
    (project / "inventory" / "group_vars" / "web.yml").write_text("workers: 8\n")
    assert cache_key(project / "inventory", project) != key
    after = fingerprints(project)
    assert after[0] == before[0] and after[1] != before[1]  # the role's stage reads it
    assert fingerprints(project) == after  # and again, from the cache


def test_a_changed_inline_variable_is_read_again_by_ansible(project: Path) -> None:
    before = fingerprints(project)
    hosts = project / "inventory" / "hosts"
    hosts.write_text(hosts.read_text().replace("inline=1", "inline=2"))
    assert fingerprints(project) != before
    hosts.write_text(hosts.read_text().replace("inline=2", "inline=1"))
    assert fingerprints(project) == before


def test_ansible_cfg_and_the_ansible_environment_are_in_the_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = project / "inventory"
    key = cache_key(inventory, project)
    (project / "ansible.cfg").write_text("[defaults]\nroles_path = ./roles\n")
    with_cfg = cache_key(inventory, project)
    monkeypatch.setenv("ANSIBLE_INVENTORY_ENABLED", "ini")
    assert len({key, with_cfg, cache_key(inventory, project)}) == 3


def test_inventories_that_depend_on_more_than_their_files_are_never_kept(
    project: Path,
) -> None:
    inventory = project / "inventory"
    hosts = inventory / "hosts"
    assert cache_key(inventory, project) is not None
    hosts.chmod(0o755)  # a script: its output may change without it
    assert cache_key(inventory, project) is None
    hosts.chmod(0o644)
    plugin = inventory / "cloud.yml"
    plugin.write_text("plugin: constructed\n")
    assert cache_key(inventory, project) is None
    plugin.write_text("all:\n  vars:\n    token: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n")
    assert cache_key(inventory, project) is None
    plugin.unlink()
    (inventory / "group_vars" / "vaulted.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n31\n")
    assert cache_key(inventory, project) is not None  # Rolecast reads vars files itself


def test_an_unchanged_inventory_is_read_without_importing_ansible(project: Path) -> None:
    fingerprints(project)  # kept
    script = (
        "import sys; from tests.test_inventory_cache import fingerprints; "
        f"print(fingerprints(__import__('pathlib').Path({str(project)!r}))); "
        "assert 'ansible' not in sys.modules, 'ansible was imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(fingerprints(project))


def test_a_kept_reading_holds_no_inline_value_as_it_is(project: Path) -> None:
    """An unvaulted inline value (a password in an INI inventory) is kept as digests: the
    value's own digest and those of the names it mentions, never its text."""
    hosts = project / "inventory" / "hosts"
    hosts.write_text(hosts.read_text() + "db_password=Sw0rdfish-7731 {{ inline }}\n")
    cold = fingerprints(project)
    (entry,) = kept(project)
    assert "Sw0rdfish" not in entry.read_text()
    assert fingerprints(project) == cold  # the kept reading gives the same fingerprint
