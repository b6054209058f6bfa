"""`-e/--extra-vars`, read as ansible-playbook reads them: `KEY=VALUE ...`, inline YAML or
JSON, `@FILE`. Later options win; they win over every other variable, as in Ansible.

A value given inline may be a secret, so it never reaches a file, a log or an argv: each
inline -e becomes a file of lookups, `{"token": "{{ lookup('env', 'ROLECAST_EV_3') |
from_json }}"}`, handed to ansible-playbook as `-e @FILE` (Packer would read Jinja in its
argv as its own templates), and the values travel, as JSON, in the environment of Packer and
Ansible (see `environment`). A file of the user's is handed over by its own path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError

ENV_PREFIX = "ROLECAST_EV_"


@dataclass(frozen=True)
class InlineVars:
    """One inline -e: its variables, each carried by one environment variable."""

    values: dict[str, Any] = field(repr=False)  # may hold secrets: never printed
    first: int  # the number of the environment variable of its first key

    def env_names(self) -> dict[str, str]:
        return {key: f"{ENV_PREFIX}{self.first + i}" for i, key in enumerate(self.values)}


@dataclass(frozen=True)
class FileVars:
    """One -e @FILE: given by path, read by ansible-playbook itself."""

    path: Path  # absolute
    shown: str  # as the user wrote it


@dataclass(frozen=True)
class ExtraVars:
    items: tuple[InlineVars | FileVars, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def environment(self) -> dict[str, str]:
        """The values, as JSON, by environment variable: for Packer and ansible-playbook."""
        env: dict[str, str] = {}
        for item in self.items:
            if isinstance(item, InlineVars):
                for key, name in item.env_names().items():
                    env[name] = json.dumps(item.values[key])
        return env

    def arguments(self, directory: Path) -> list[str]:
        """ansible-playbook arguments, in the user's order: paths of files, no value."""
        args: list[str] = []
        for index, item in enumerate(self.items):
            path = item.path if isinstance(item, FileVars) else lookups_file(directory, index)
            args += ["-e", f"@{path}"]
        return args

    def write_lookups(self, directory: Path) -> None:
        """The files of lookups `arguments` names: a name and its lookup, never a value."""
        for old in directory.glob(LOOKUPS.format("*")):
            old.unlink()
        for index, item in enumerate(self.items):
            if isinstance(item, InlineVars):
                lookups = {
                    key: f"{{{{ lookup('env', '{name}') | from_json }}}}"
                    for key, name in item.env_names().items()
                }
                text = json.dumps(lookups, indent=2) + "\n"
                lookups_file(directory, index).write_text(text, encoding="utf-8")


LOOKUPS = "extra-vars-{}.json"


def lookups_file(directory: Path, index: int) -> Path:
    return directory / LOOKUPS.format(index + 1)


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10 :: 4]}"


def _inline(text: str, position: int) -> dict[str, Any]:
    """An inline -e as a mapping. Messages never quote the value: it may be a secret."""
    which = f"the {_ordinal(position)} -e"
    if text[0] in "[{":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (column {mark.column + 1})" if mark is not None else ""
            raise UsageError(f"{which}: not valid YAML or JSON{where}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{which}: give a mapping ({{...}}), not a list")
        return {str(k): v for k, v in data.items()}
    from ansible.parsing.splitter import parse_kv

    try:
        data = parse_kv(text)
    except Exception:  # ansible's own parse errors, on unbalanced quotes and the like
        raise UsageError(f"{which}: unbalanced quotes or braces in KEY=VALUE") from None
    if "_raw_params" in data:
        raise UsageError(f"{which}: give KEY=VALUE [KEY2=VALUE2 ...], YAML/JSON or @FILE")
    return {str(k): str(v) for k, v in data.items()}


def _check_file(path: Path, text: str) -> None:
    """An -e @FILE that ansible-playbook would refuse mid-build: invalid YAML, or not a
    mapping. A vaulted file is Ansible's to decrypt. Messages name lines, never values."""
    from .yamlsource import is_vaulted, load_vars, marked_problem

    raw = path.read_bytes()
    if is_vaulted(raw):
        return
    try:
        data = load_vars(raw)
    except yaml.MarkedYAMLError as exc:
        raise UsageError(f"-e {text}: {marked_problem(text[1:], exc, 'invalid YAML')}") from None
    except yaml.YAMLError:
        raise UsageError(f"-e {text}: invalid YAML") from None
    if data is not None and not isinstance(data, dict):
        raise UsageError(
            f"-e {text}: variables must be a mapping of names to values, not a "
            f"{type(data).__name__}"
        )


def parse_extra_vars(texts: list[str], cwd: Path | None = None) -> ExtraVars:
    """The -e options of one run; `@FILE` relative to `cwd` (the working directory)."""
    base = cwd or Path.cwd()
    items: list[InlineVars | FileVars] = []
    count = 0
    for position, text in enumerate(texts, start=1):
        if not text:
            continue
        if text.startswith("@"):
            path = (base / text[1:]).resolve()
            if not path.is_file():
                where = "" if Path(text[1:]).is_absolute() else f" (relative to {base})"
                raise UsageError(f"-e {text}: no such file{where}")
            _check_file(path, text)
            items.append(FileVars(path, text[1:]))
            continue
        if text[0] in "/.":
            raise UsageError(f"-e {text}: to read variables from a file, write -e @{text}")
        values = _inline(text, position)
        items.append(InlineVars(values, count))
        count += len(values)
    return ExtraVars(tuple(items))
