"""Where Ansible says an error is: the file, line and column it attaches to what it loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import Problem
from ..spec import display_path

Where = tuple[str | None, int | None, int | None]


def origin_of(value: Any) -> Where:
    """The origin Ansible tagged a loaded value with (ansible-core 2.19 and later), or the
    `ansible_pos` older versions kept; `(None, None, None)` when it has none."""
    if value is None:
        return None, None, None
    path = getattr(value, "path", None)
    if isinstance(path, str) and hasattr(value, "line_num"):
        return path, value.line_num, getattr(value, "col_num", None)
    try:
        from ansible._internal._datatag._tags import Origin

        tag = Origin.get_tag(value)
    except (ImportError, AttributeError):
        tag = None
    if tag is not None:
        return tag.path, tag.line_num, tag.col_num
    pos = getattr(value, "ansible_pos", None)
    if pos:
        return pos[0], pos[1], pos[2]
    return None, None, None


def one_line(text: str) -> str:
    """Ansible's message on one line: its first paragraph, without the file excerpt."""
    lines = []
    for line in text.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines).rstrip(":")


def ansible_problem(exc: Exception, root: Path, what: str, fallback: Path | None = None) -> Problem:
    """An error Ansible raised while loading, as one located problem."""
    path, line, column = origin_of(getattr(exc, "obj", None))
    if path is None:
        path, line, column = origin_of(getattr(exc, "_obj", None))
    message = getattr(exc, "_original_message", None) or getattr(exc, "message", None) or exc
    shown = (
        display_path(Path(path), root)
        if path
        else (display_path(fallback, root) if fallback else "")
    )
    return Problem(shown, line, column, "", f"{what}: {one_line(str(message))}")
