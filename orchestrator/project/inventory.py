"""Inventories, read as Ansible reads them: groups, hosts, and the files Ansible cannot parse.

Ansible itself only warns about an inventory file it cannot parse and goes on with an
empty inventory; Rolecast makes each such file an input error, with Ansible's own message
and the line where Ansible gives one, so that a broken inventory never passes `validate`.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem
from ..spec import display_path
from ..yamlsource import is_vaulted, load_vars, marked_problem

YAML_SUFFIXES = (".yml", ".yaml", ".json")
_PLUGIN = re.compile(r"with '?([\w.]+)'? plugin")
_UNPARSED = re.compile(r"Unable to parse (.+) as an inventory source")
# ansible-core before 2.19 said it in one warning: "* Failed to parse SRC with P plugin: MSG"
_OLD_FAILURE = re.compile(r"\* Failed to parse (.+?) with ([\w.]+) plugin: (.*)", re.S)


@dataclass(frozen=True)
class ParseFailure:
    """One inventory source Ansible could not parse, in Ansible's words."""

    source: Path
    plugin: str
    message: str
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class LoadedInventory:
    manager: Any  # Ansible's InventoryManager
    failures: tuple[ParseFailure, ...]


# Redirecting stdout swaps sys.stdout for the whole process, and the display hooks are
# shared: one thread at a time.
_QUIET = threading.Lock()


@contextlib.contextmanager
def _hooked(display: Any, seen: list[tuple[str, Any]]) -> Iterator[None]:
    """Collect what Ansible's inventory manager would print as warnings."""
    saved = {name: display.__dict__.get(name) for name in ("warning", "error_as_warning")}

    def warning(msg: str, *args: Any, **kwargs: Any) -> None:
        seen.append((str(msg), None))

    def error_as_warning(msg: str, exception: Any = None, *args: Any, **kwargs: Any) -> None:
        seen.append((str(msg), exception))

    display.warning = warning
    display.error_as_warning = error_as_warning
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                display.__dict__.pop(name, None)
            else:
                setattr(display, name, value)


@lru_cache(maxsize=32)
def _load(inventory: str) -> LoadedInventory:
    from ansible.inventory import manager as module
    from ansible.parsing.dataloader import DataLoader

    seen: list[tuple[str, Any]] = []
    sink = io.StringIO()
    with (
        _hooked(module.display, seen),
        contextlib.redirect_stderr(sink),
        contextlib.redirect_stdout(sink),
    ):
        manager = module.InventoryManager(loader=DataLoader(), sources=[inventory])
    return LoadedInventory(manager, tuple(_failures(seen)))


def load_inventory(inventory: Path) -> LoadedInventory:
    """Ansible's InventoryManager for this inventory, read once per process, quietly."""
    with _QUIET:
        return _load(str(inventory))


def forget_readings() -> None:
    """Read every inventory afresh from now on."""
    with _QUIET:
        _load.cache_clear()


def _failures(seen: list[tuple[str, Any]]) -> Iterator[ParseFailure]:
    """The sources Ansible gave up on, each with the failure that explains it best."""
    tried: dict[str, list[ParseFailure]] = {}
    for msg, exc in seen:
        old = _OLD_FAILURE.search(msg)
        if old is not None:
            source, plugin, text = old.groups()
            tried.setdefault(source, []).append(ParseFailure(Path(source), plugin, text.strip()))
            continue
        if exc is not None:
            origin = getattr(exc, "obj", None)
            path = getattr(origin, "path", None)
            description = str(getattr(origin, "description", "") or "")
            source = path or (re.findall(r"source '(.+)'", description) or [""])[0]
            plugin = (_PLUGIN.findall(msg) or ["?"])[0]
            text = str(getattr(exc, "message", None) or exc).strip()
            failure = ParseFailure(
                Path(source),
                plugin,
                text,
                getattr(origin, "line_num", None),
                getattr(origin, "col_num", None),
            )
            tried.setdefault(source, []).append(failure)
            continue
        unparsed = _UNPARSED.search(msg)
        if unparsed is None:
            continue
        source = unparsed.group(1)
        if Path(source).is_dir() and any(k.startswith(source + "/") for k in tried):
            continue  # its files were named one by one
        yield _best(Path(source), tried.get(source, []))


def _best(source: Path, failures: list[ParseFailure]) -> ParseFailure:
    if not failures:
        reason = "no such file or directory" if not source.exists() else "no plugin accepts it"
        return ParseFailure(source, "", f"Unable to parse it as an inventory source ({reason})")
    fitting = "ini"
    if source.suffix in YAML_SUFFIXES:
        fitting = "yaml"
    ranked = sorted(
        failures,
        key=lambda f: (
            f.plugin not in (fitting, "auto" if fitting == "yaml" else fitting),
            f.line is None,
        ),
    )
    best = ranked[0]
    unclosed = _unclosed_section(source) if fitting == "ini" else None
    if unclosed is not None:
        number, text = unclosed
        message = f"section header {text!r} has no closing ']' (Ansible said: {best.message})"
        return ParseFailure(best.source, best.plugin, message, number)
    if best.line is None:
        best = ParseFailure(best.source, best.plugin, best.message, _guess_line(source, best))
    return best


def _unclosed_section(source: Path) -> tuple[int, str] | None:
    """`[webservers` without its `]`: Ansible reads it as a host range and says something
    about unpacking; the line and what is missing help more."""
    try:
        lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].split(";", 1)[0].strip()
        if text.startswith("[") and "]" not in text:
            return number, text
    return None


def _guess_line(source: Path, failure: ParseFailure) -> int | None:
    """The line an INI error is about: Ansible names the text it choked on, not the line."""
    found = re.findall(r"got: (.+)$|'([^']+)'", failure.message)
    needles = [a or b for a, b in found]
    try:
        lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for needle in needles:
        for number, line in enumerate(lines, start=1):
            if needle.strip() and needle.strip() in line:
                return number
    return None


@dataclass(frozen=True)
class InventoryInfo:
    groups: frozenset[str]
    hosts: frozenset[str]
    failures: tuple[ParseFailure, ...] = ()


def failure_problem(failure: ParseFailure, root: Path, named_by: str) -> Problem:
    """The file Ansible could not parse, where; `named_by` says where the inventory is set."""
    plugin = f" ({failure.plugin} plugin)" if failure.plugin else ""
    return Problem(
        file=display_path(failure.source, root),
        line=failure.line,
        column=failure.column,
        path="",
        message=f"Ansible cannot parse this inventory{plugin}: "
        f"{failure.message.rstrip('.')} (inventory set at {named_by})",
    )


# -- group_vars and host_vars ----------------------------------------------------------------

VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


def vars_files(inventory: Path) -> list[Path]:
    """The group_vars and host_vars files beside an inventory, as Ansible finds them."""
    base = inventory if inventory.is_dir() else inventory.parent
    found = []
    for kind in ("group_vars", "host_vars"):
        top = base / kind
        for path in sorted(top.rglob("*")) if top.is_dir() else []:
            hidden = any(part.startswith(".") for part in path.relative_to(top).parts)
            if path.is_file() and not hidden and path.suffix in VARS_SUFFIXES:
                found.append(path)
    return found


def vars_file_problems(inventory: Path, root: Path) -> list[Problem]:
    """Each vars file of the inventory that Ansible would refuse mid-build: invalid YAML,
    or not a mapping. Vaulted files are Ansible's to read."""
    problems = []
    for path in vars_files(inventory):
        raw = path.read_bytes()
        if is_vaulted(raw):
            continue
        shown = display_path(path, root)
        try:
            data = load_vars(raw)
        except yaml.MarkedYAMLError as exc:
            problems.append(marked_problem(shown, exc, "invalid YAML in inventory variables"))
            continue
        except yaml.YAMLError as exc:
            problems.append(Problem(shown, None, None, "", f"invalid YAML: {exc}"))
            continue
        if data is not None and not isinstance(data, dict):
            problems.append(
                Problem(
                    shown,
                    1,
                    1,
                    "",
                    "inventory variables must be a mapping of names to values, not a "
                    f"{type(data).__name__}",
                )
            )
    return problems


# -- ansible.cfg -----------------------------------------------------------------------------


def config_value(root: Path, key: str) -> str | None:
    """The raw value of `key` in [defaults] of the project's ansible.cfg."""
    cfg = root / "ansible.cfg"
    if not cfg.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(cfg, encoding="utf-8")
    except configparser.Error:
        return None
    return parser.get("defaults", key, fallback=None) or None


def config_line(root: Path, key: str) -> int | None:
    try:
        lines = (root / "ansible.cfg").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for number, line in enumerate(lines, start=1):
        if re.match(rf"\s*{re.escape(key)}\s*[=:]", line):
            return number
    return None


def config_paths(root: Path, key: str, separator: str = ":") -> list[Path]:
    """Existing paths the project's ansible.cfg gives for `key` in [defaults], resolved."""
    value = config_value(root, key) or ""
    paths = [
        (root / Path(part.strip()).expanduser()).resolve()
        for part in value.split(separator)
        if part.strip()
    ]
    return [p for p in paths if p.exists()]


def config_inventory(root: Path) -> Path | None:
    """The inventory the project's ansible.cfg names, as ansible-playbook would use it
    (its first entry, present or not)."""
    value = config_value(root, "inventory")
    first = next((p.strip() for p in (value or "").split(",") if p.strip()), None)
    return (root / Path(first).expanduser()).resolve() if first else None
