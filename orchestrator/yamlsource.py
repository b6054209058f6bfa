"""YAML loading that remembers where every key and value stood, for errors a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, SpecError

Loc = tuple[str | int, ...]

# A spec is a small file; anything far larger is a mistake or an attack.
MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64  # a spec nests a handful of levels


def format_path(loc: Loc) -> str:
    """`('images', 'web', 'roles', 0)` -> `images.web.roles[0]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class YamlDocument:
    """Parsed data plus the 1-based line/column of each key and value, by path."""

    file: str
    data: Any
    value_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int | None, int | None]:
        """Where `loc` stands; falls back to the nearest enclosing node that exists."""
        marks = self.key_marks if key else self.value_marks
        if loc in marks:
            return marks[loc]
        if loc in self.key_marks:
            return self.key_marks[loc]
        for cut in range(len(loc) - 1, -1, -1):
            prefix = loc[:cut]
            if prefix in self.key_marks:
                return self.key_marks[prefix]
            if prefix in self.value_marks:
                return self.value_marks[prefix]
        return None, None

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        line, col = self.position(loc, key=key)
        return Problem(self.file, line, col, format_path(loc), message)


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0
        self.active: set[int] = set()  # the nodes on the path being walked


class _Unreadable(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def _walk(
    node: yaml.Node,
    loc: Loc,
    doc: YamlDocument,
    problems: list[Problem],
    budget: _Budget,
) -> None:
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise _TooBig
    if len(loc) > MAX_DEPTH:
        raise _Unreadable(node, f"nested more than {MAX_DEPTH} levels deep")
    if id(node) in budget.active:
        raise _Unreadable(node, "an alias refers to a node that contains it (a loop)")
    if isinstance(node, yaml.CollectionNode):
        budget.active.add(id(node))
        try:
            _walk_children(node, loc, doc, problems, budget)
        finally:
            budget.active.discard(id(node))
    else:
        doc.value_marks.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))


def _walk_children(
    node: yaml.CollectionNode,
    loc: Loc,
    doc: YamlDocument,
    problems: list[Problem],
    budget: _Budget,
) -> None:
    doc.value_marks.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(
                    Problem(
                        doc.file,
                        line,
                        key_node.start_mark.column + 1,
                        format_path((*loc, key)),
                        f"duplicate key (first set on line {seen[key]}); keep one",
                    )
                )
            seen[key] = line
            child = (*loc, key)
            doc.key_marks.setdefault(child, (line, key_node.start_mark.column + 1))
            _walk(value_node, child, doc, problems, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*loc, index), doc, problems, budget)


class _TooBig(Exception):
    pass


def _read_text(path: Path, name: str) -> str:
    """The file as UTF-8 text of at most MAX_BYTES."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(
            [Problem(name, None, None, "", "file not found; create it with `rolecast init`")]
        ) from None
    except OSError as exc:
        raise SpecError([Problem(name, None, None, "", f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise SpecError(
            [Problem(name, None, None, "", f"file is {len(raw)} bytes; a spec is at most 1 MiB")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Problem(name, None, None, "", f"not UTF-8 text (byte {exc.start}); save it as UTF-8")]
        ) from None


def _compose(text: str, name: str) -> yaml.Node | None:
    """The YAML node tree; a syntax error names its line and column."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError(
            [Problem(name, None, None, "", "nested too deeply to read; a spec nests a few levels")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([marked_problem(name, exc, "invalid YAML")]) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character
        shown = repr(chr(char)) if isinstance(char, int) else repr(char)
        raise SpecError(
            [Problem(name, line, col, "", f"invalid YAML: character {shown} not allowed")]
        ) from None
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise SpecError([Problem(name, None, None, "", f"invalid YAML: {reason}")]) from None


def _construct(text: str, node: yaml.Node, name: str) -> Any:
    """Python values of a checked node tree; a value Python refuses is an input error."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except (ValueError, OverflowError, RecursionError) as exc:
        # e.g. an integer of more digits than Python converts
        reason = str(exc).split(";")[0] or type(exc).__name__
        raise SpecError(
            [Problem(name, None, None, "", f"a value cannot be read: {reason}")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        raise SpecError([marked_problem(name, exc, "invalid YAML")]) from None


def marked_problem(name: str, exc: yaml.MarkedYAMLError, what: str) -> Problem:
    """A YAML error where PyYAML marked it: `FILE:LINE:COLUMN: WHAT: reason`."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    reason = exc.problem or exc.context or "invalid YAML"
    return Problem(name, line, column, "", f"{what}: {reason}")


def load_yaml(path: Path, display: str | None = None) -> YamlDocument:
    """Load one YAML document; every failure is a SpecError that names file, line and column."""
    name = display or str(path)
    text = _read_text(path, name)
    node = _compose(text, name)
    doc = YamlDocument(file=name, data=None)
    if node is None:
        return doc
    problems: list[Problem] = []
    try:
        _walk(node, (), doc, problems, _Budget())
    except _TooBig:
        raise SpecError(
            [Problem(name, 1, 1, "", f"more than {MAX_NODES} YAML nodes; is an alias exploding?")]
        ) from None
    except _Unreadable as exc:
        mark = exc.node.start_mark
        raise SpecError(
            [Problem(name, mark.line + 1, mark.column + 1, "", f"invalid YAML: {exc.message}")]
        ) from None
    if problems:
        raise SpecError(problems)
    doc.data = _construct(text, node, name)
    return doc


# -- Ansible vars files (group_vars, host_vars, -e @FILE) ------------------------------------

VAULT_HEADER = b"$ANSIBLE_VAULT"


class VarsLoader(yaml.SafeLoader):
    """YAML as Ansible writes vars files: `!vault` and `!unsafe` values are kept as text."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return f"{node.tag} {loader.construct_scalar(node)}"
    return f"{node.tag} {node.start_mark}"


VarsLoader.add_multi_constructor("!", lambda loader, suffix, node: _tagged(loader, node))


def is_vaulted(raw: bytes) -> bool:
    """A whole file encrypted with Ansible Vault: Ansible's to decrypt, not ours to read."""
    return raw.lstrip().startswith(VAULT_HEADER)


def load_vars(raw: bytes) -> Any:
    """A vars file's data as Ansible reads it; yaml.YAMLError when it is not YAML."""
    return yaml.load(raw.decode("utf-8", errors="replace"), Loader=VarsLoader)
