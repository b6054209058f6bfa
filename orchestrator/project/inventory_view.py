"""What Rolecast reads of an inventory through Ansible (groups, hosts, their inline
variables, the files Ansible could not parse), kept under `.rolecast/inventory/` (a file
per inventory) so that an unchanged inventory needs no Ansible at all: importing its
inventory manager costs ~0.4 s a run.

The entry is keyed by everything Ansible's reading depends on: every file of the inventory
(for a file, also its group_vars/ and host_vars/), the ansible.cfg files Ansible may read,
the ANSIBLE_* environment and ansible-core itself; any change is another key. Inventories
whose reading depends on more than their files are never kept: executable ones (scripts),
plugin configurations (`plugin:`, which may ask a cloud) and vaulted content. Variables are
kept as their digests and the names their values mention, as the fingerprint uses them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..digests import digest, file_digest, value_digest, value_words
from .inventory import InventoryInfo, ParseFailure, forget_readings, load_inventory

FORMAT = 2  # 2: a variable's words are digests
CACHE_DIR = Path(".rolecast") / "inventory"
PLUGIN_CONFIG = re.compile(rb"^plugin\s*:", re.M)
VAULTED = re.compile(rb"\$ANSIBLE_VAULT|!vault")
VARS_DIRS = ("group_vars", "host_vars")

Encoded = tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, digest, words) per variable


@dataclass(frozen=True)
class GroupView:
    depth: int
    ancestors: tuple[str, ...]
    hosts: tuple[str, ...]  # Ansible's get_hosts(): the hosts of its children too
    vars: Encoded


@dataclass(frozen=True)
class HostView:
    groups: tuple[str, ...]  # Ansible's get_groups(): its groups and their ancestors
    vars: Encoded


@dataclass(frozen=True)
class InventoryView:
    groups: dict[str, GroupView]
    hosts: dict[str, HostView]
    failures: tuple[ParseFailure, ...]


def encode(variables: dict[str, Any]) -> Encoded:
    return tuple(
        (str(name), value_digest(value), tuple(sorted(value_words(value))))
        for name, value in variables.items()
    )


def from_manager(inventory: Path) -> InventoryView:
    """The view, read by Ansible's inventory manager."""
    loaded = load_inventory(inventory)
    manager = loaded.manager
    groups = {
        name: GroupView(
            depth=int(group.depth),
            ancestors=tuple(sorted(a.name for a in group.get_ancestors())),
            hosts=tuple(h.name for h in group.get_hosts()),
            vars=encode(dict(group.get_vars())),
        )
        for name, group in manager.groups.items()
    }
    hosts = {
        host.name: HostView(
            groups=tuple(g.name for g in host.get_groups()),
            vars=encode(dict(host.get_vars())),
        )
        for host in manager.get_hosts()
    }
    return InventoryView(groups, hosts, loaded.failures)


def _inputs(inventory: Path) -> list[Path] | None:
    """Every file the inventory's reading depends on; None when it depends on more. (Its
    group_vars/ and host_vars/ count too: Rolecast reads them itself, vaulted or not.)"""
    if inventory.is_dir():
        files = sorted(p for p in inventory.rglob("*") if p.is_file())
        sources = [p for p in files if p.relative_to(inventory).parts[0] not in VARS_DIRS]
    else:
        sources, files = [inventory], [inventory]
        for kind in VARS_DIRS:
            beside = inventory.parent / kind
            files += sorted(p for p in beside.rglob("*") if p.is_file()) if beside.is_dir() else []
    for path in sources:
        data = path.read_bytes()
        if os.access(path, os.X_OK) or PLUGIN_CONFIG.search(data) or VAULTED.search(data):
            return None
    return files


def _ansible_configs(root: Path) -> list[Path]:
    """The ansible.cfg files Ansible may read, wherever it runs from."""
    named = os.environ.get("ANSIBLE_CONFIG")
    found = [Path(named)] if named else []
    found += [Path.cwd() / "ansible.cfg", root / "ansible.cfg", Path.home() / ".ansible.cfg"]
    return [*found, Path("/etc/ansible/ansible.cfg")]


def _ansible_core() -> str:
    spec = importlib.util.find_spec("ansible")
    if spec is None or spec.origin is None:
        return "absent"
    return file_digest(Path(spec.origin).parent / "release.py")


def cache_key(inventory: Path, root: Path) -> str | None:
    """The key of the inventory's reading, as of now; None when it cannot be kept."""
    files = _inputs(inventory)
    if files is None:
        return None
    parts: list[Any] = [FORMAT, str(inventory), _ansible_core()]
    parts += [[str(p), file_digest(p)] for p in files]
    parts += [[str(p), file_digest(p) if p.is_file() else None] for p in _ansible_configs(root)]
    parts += sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_"))
    return value_digest(parts)


def _to_json(view: InventoryView) -> dict[str, Any]:
    return {
        "groups": {n: [g.depth, g.ancestors, g.hosts, g.vars] for n, g in view.groups.items()},
        "hosts": {n: [h.groups, h.vars] for n, h in view.hosts.items()},
        "failures": [[str(f.source), f.plugin, f.message, f.line, f.column] for f in view.failures],
    }


def _vars(data: list[Any]) -> Encoded:
    return tuple((str(n), str(d), tuple(map(str, w))) for n, d, w in data)


def _from_json(data: dict[str, Any]) -> InventoryView:
    groups = {
        name: GroupView(int(depth), tuple(ancestors), tuple(hosts), _vars(variables))
        for name, (depth, ancestors, hosts, variables) in data["groups"].items()
    }
    hosts = {
        name: HostView(tuple(member_of), _vars(variables))
        for name, (member_of, variables) in data["hosts"].items()
    }
    failures = tuple(
        ParseFailure(Path(source), plugin, message, line, column)
        for source, plugin, message, line, column in data["failures"]
    )
    return InventoryView(groups, hosts, failures)


_SEEN: dict[str, InventoryView] = {}
_READING = threading.Lock()  # images are fingerprinted in parallel


def inventory_view(inventory: Path, root: Path | None) -> InventoryView:
    """The inventory as Ansible reads it: from the project's cache when nothing it depends
    on changed, else from Ansible (and then kept)."""
    key = cache_key(inventory, root) if root is not None else None
    if key is None or root is None:
        return from_manager(inventory)
    with _READING:
        if key not in _SEEN:
            _SEEN[key] = _kept_or_read(inventory, root, key)
        return _SEEN[key]


def _kept_or_read(inventory: Path, root: Path, key: str) -> InventoryView:
    kept = root / CACHE_DIR / f"{digest(str(inventory).encode())[:16]}.json"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        entry = json.loads(kept.read_text(encoding="utf-8"))
        if entry["key"] == key:
            return _from_json(entry["view"])
    forget_readings()  # this process may have read it before it changed
    view = from_manager(inventory)
    with contextlib.suppress(OSError):  # not kept: the next run asks Ansible again
        kept.parent.mkdir(parents=True, exist_ok=True)
        written = kept.with_name(f"{kept.name}.{os.getpid()}")
        written.write_text(json.dumps({"key": key, "view": _to_json(view)}), encoding="utf-8")
        os.replace(written, kept)
    return view


def read_inventory(path: Path, root: Path | None = None) -> InventoryInfo:
    """Groups and hosts as Ansible itself reads the inventory (any format it reads); kept
    in the project `root`'s cache of inventory readings, when given."""
    view = inventory_view(path, root)
    return InventoryInfo(
        groups=frozenset(view.groups), hosts=frozenset(view.hosts), failures=view.failures
    )
