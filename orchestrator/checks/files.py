"""Each file a role or playbook brings, read as Ansible reads it: YAML through Ansible's own
loader, templates through Jinja's parser, vaulted files named when no password is given."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

from ..errors import Problem
from ..spec import display_path
from ..yamlsource import is_vaulted as vaulted
from .origin import ansible_problem

YAML_SUFFIXES = (".yml", ".yaml", ".json")
# The role directories Ansible reads as YAML, and what messages call them.
YAML_DIRS = {
    "tasks": "role tasks",
    "handlers": "role handlers",
    "vars": "role vars",
    "defaults": "role defaults",
    "meta": "role meta",
}
INLINE_VAULT = re.compile(r"^[^#\n]*:\s*!vault\b", re.M)
# A template may set its own delimiters on its first line (`#jinja2: variable_start_string: ...`).
JINJA_HEADER = "#jinja2:"


# Ansible's own Jinja extensions: a template using them parses here as it does there.
@functools.cache
def _jinja() -> jinja2.Environment:
    """Jinja, loaded when a file is checked (a run whose checks are remembered needs none)."""
    import jinja2

    return jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


def _syntax_error() -> type[jinja2.TemplateSyntaxError]:
    import jinja2

    return jinja2.TemplateSyntaxError


def is_vaulted(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return vaulted(handle.read(64))
    except OSError:
        return False


def role_yaml_files(role: Path) -> Iterator[tuple[Path, str]]:
    """The YAML files of a role that Ansible loads, with what they are."""
    for directory, what in YAML_DIRS.items():
        top = role / directory
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and path.suffix in YAML_SUFFIXES:
                yield path, what


def template_files(role: Path) -> Iterator[Path]:
    top = role / "templates"
    for path in sorted(top.rglob("*")) if top.is_dir() else []:
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(top).parts):
            yield path


def yaml_problems(loader: Any, path: Path, root: Path, what: str) -> list[Problem]:
    """Ansible's own YAML loader on one file; its error, located, when it refuses it."""
    from ansible.errors import AnsibleError

    try:
        data = loader.load_from_file(str(path))
    except AnsibleError as exc:
        return [ansible_problem(exc, root, f"invalid YAML in {what}", fallback=path)]
    return list(expression_problems(data, path, root))


def expression_problems(data: Any, path: Path, root: Path) -> Iterator[Problem]:
    """Jinja expressions in a loaded YAML file (`"{{ x }"`) that cannot parse."""
    for text in _strings(data):
        if "{{" not in text and "{%" not in text:
            continue
        try:
            _jinja().parse(text)
        except _syntax_error() as exc:
            from .origin import origin_of

            _, line, column = origin_of(text)
            yield Problem(
                display_path(path, root),
                line,
                column,
                "",
                f"Jinja syntax error in {text.strip()!r}: {exc.message}",
            )


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def template_problem(path: Path, root: Path) -> Problem | None:
    """A role template Jinja cannot parse: the line Jinja names."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # a binary file under templates/ is not ours to judge
    if text.startswith(JINJA_HEADER):
        return None  # its own delimiters: the template module knows them, we do not
    try:
        _jinja().parse(text)
    except _syntax_error() as exc:
        return Problem(
            display_path(path, root), exc.lineno, None, "", f"Jinja syntax error: {exc.message}"
        )
    return None


def vault_problems(paths: list[Path], root: Path) -> list[Problem]:
    """Files (or values) encrypted with Ansible Vault, when no vault password is given."""
    problems = []
    advice = (
        "no vault password given: pass --vault-password-file FILE or --vault-id LABEL@FILE "
        "(or set vault_password_file in ansible.cfg)"
    )
    for path in paths:
        if is_vaulted(path):
            problems.append(
                Problem(
                    display_path(path, root),
                    1,
                    1,
                    "",
                    f"encrypted with Ansible Vault, and {advice}",
                )
            )
            continue
        if path.suffix not in YAML_SUFFIXES or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found = INLINE_VAULT.search(text)
        if found is not None:
            line = text.count("\n", 0, found.start()) + 1
            problems.append(
                Problem(display_path(path, root), line, None, "", f"a !vault value, and {advice}")
            )
    return problems
