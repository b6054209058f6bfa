"""The inventory variables that reach an image's build host, one definition per source.

Rolecast's variable rule: a stage (a role, with the meta dependencies it brings) can read
a variable when the variable's name appears as a word in any file of the stage's roles,
or in the definition of another variable the stage can read. Every stage reads every
`ansible_*` variable (they steer connections and privilege for every task), and a stage
whose files use dynamic lookups (`vars[...]`, `hostvars`, `lookup('vars', ...)`,
`varnames`) reads every variable. A changed variable rebuilds the first stage that can
read it and the stages after it; a variable no role reads rebuilds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .digests import WORD as WORD
from .digests import file_digest, value_digest, value_words, word_digest
from .extra_vars import ExtraVars, FileVars
from .project.inventory import load_inventory
from .project.inventory_view import (
    Encoded,
    GroupView,
    HostView,
    InventoryView,
    encode,
    from_manager,
    inventory_view,
)
from .yamlsource import is_vaulted, load_vars

DYNAMIC = re.compile(
    r"\bhostvars\b|\bvars\s*\[|lookup\(\s*['\"](?:ansible\.builtin\.)?vars|"
    r"query\(\s*['\"](?:ansible\.builtin\.)?vars|\bvarnames\b"
)
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


@dataclass(frozen=True)
class Definition:
    """One variable as one source defines it."""

    source: str  # a path relative to the project, or `inventory` for its structure
    name: str
    digest: str
    words: frozenset[str]  # digests of the names its value mentions (transitive rule)


@dataclass(frozen=True)
class Variables:
    definitions: tuple[Definition, ...]
    opaque: dict[str, str]  # sources that cannot be read per variable (vaulted files): all stages

    def read_by(self, words: frozenset[str], dynamic: bool) -> list[Definition]:
        """The definitions a stage whose files hold `words` can read, by the rule above."""
        if dynamic:
            return list(self.definitions)
        names = {d.name for d in self.definitions}
        by_digest = {word_digest(n): n for n in names}  # a definition's words are digests
        wanted = {n for n in names if n in words or n.startswith("ansible_")}
        grown = True
        while grown:
            grown = False
            for definition in self.definitions:
                if definition.name in wanted:
                    more = {by_digest[w] for w in definition.words if w in by_digest} - wanted
                    if more:
                        wanted |= more
                        grown = True
        return [d for d in self.definitions if d.name in wanted]


def _words(value: Any) -> frozenset[str]:
    return value_words(value)


def _vars_files(base: Path) -> list[Path]:
    if base.is_dir():
        return sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
    for suffix in VARS_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return [candidate]
    return []


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _host_groups(
    view: InventoryView, host: str | None, groups: tuple[str, ...]
) -> list[tuple[str, GroupView]]:
    """The inventory groups (ancestors included) the build host belongs to."""
    entry = view.hosts.get(host) if host else None
    starting = list(entry.groups) if entry is not None else []
    starting += [g for g in groups if g in view.groups]
    if "all" in view.groups:
        starting.append("all")
    found: dict[str, GroupView] = {}
    for name in starting:
        found[name] = view.groups[name]
        for ancestor in view.groups[name].ancestors:
            found[ancestor] = view.groups[ancestor]
    return sorted(found.items(), key=lambda item: (item[1].depth, item[0]))


def inventory_variables(
    inventory: Path, root: Path, host: str | None, groups: tuple[str, ...]
) -> Variables:
    """Every variable the inventory gives the build host: inline, group_vars, host_vars."""
    view = inventory_view(inventory, root)
    if host and host not in view.hosts:  # Ansible's implicit localhost, or none: ask it
        view = from_manager(inventory)
        view = replace(view, hosts={**view.hosts, **_implicit(inventory, host)})
    base = inventory if inventory.is_dir() else inventory.parent
    shown = _rel(inventory, root)
    definitions: list[Definition] = []
    opaque: dict[str, str] = {}
    member_of = _host_groups(view, host, groups)

    def add(source: str, data: dict[str, Any]) -> None:
        for name, value in data.items():
            definitions.append(Definition(source, str(name), value_digest(value), _words(value)))

    def add_encoded(source: str, encoded: Encoded) -> None:
        for name, value_digest_, words in encoded:
            definitions.append(Definition(source, name, value_digest_, frozenset(words)))

    structure = {
        "group_names": sorted(n for n, _ in member_of if n not in ("all", "ungrouped")),
        "groups": {name: sorted(g.hosts) for name, g in view.groups.items()},
    }
    add(f"{shown} (inventory)", structure)
    for name, group in member_of:
        add_encoded(f"{shown} (inventory) group {name}", group.vars)
        for path in _vars_files(base / "group_vars" / name):
            _read_vars_file(path, _rel(path, root), add, opaque)
    if host:
        entry = view.hosts.get(host)
        if entry is not None:
            add_encoded(f"{shown} (inventory) host {host}", entry.vars)
        for path in _vars_files(base / "host_vars" / host):
            _read_vars_file(path, _rel(path, root), add, opaque)
    return Variables(tuple(definitions), opaque)


def _implicit(inventory: Path, host: str) -> dict[str, HostView]:
    """A host the inventory does not list, as Ansible's get_host() gives it (the implicit
    localhost), or nothing."""
    entry = load_inventory(inventory).manager.get_host(host)
    if entry is None:
        return {}
    return {host: HostView(tuple(g.name for g in entry.get_groups()), encode(entry.get_vars()))}


def extra_variables(extra: ExtraVars, root: Path) -> Variables:
    """The variables of the -e options: `-e: NAME` inline (only a digest of the value is
    kept), `-e @FILE: NAME` from a file, whose content counts whole when it is vaulted."""
    definitions: list[Definition] = []
    opaque: dict[str, str] = {}

    def add(source: str, data: dict[str, Any]) -> None:
        for name, value in data.items():
            definitions.append(Definition(source, str(name), value_digest(value), _words(value)))

    for item in extra.items:
        if isinstance(item, FileVars):
            _read_vars_file(item.path, f"-e @{_rel(item.path, root)}", add, opaque)
        else:
            add("-e", item.values)
    return Variables(tuple(definitions), opaque)


def _read_vars_file(path: Path, shown: str, add: Any, opaque: dict[str, str]) -> None:
    raw = path.read_bytes()
    if is_vaulted(raw):
        opaque[shown] = file_digest(path)
        return
    try:
        data = load_vars(raw)
    except yaml.YAMLError:
        opaque[shown] = file_digest(path)
        return
    if data is None:
        return
    if not isinstance(data, dict):
        opaque[shown] = file_digest(path)
        return
    add(shown, data)


def mapping_variables(source: str, data: dict[str, Any]) -> list[Definition]:
    """Definitions from a mapping the spec gives (an image's `vars:`)."""
    return [Definition(source, str(k), value_digest(v), _words(v)) for k, v in data.items()]


def text_words(paths: list[Path]) -> tuple[frozenset[str], bool]:
    """The words in these files, and whether they use dynamic variable lookups."""
    words: set[str] = set()
    dynamic = False
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        words.update(WORD.findall(text))
        dynamic = dynamic or DYNAMIC.search(text) is not None
    return frozenset(words), dynamic
