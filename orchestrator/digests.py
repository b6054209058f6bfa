"""Content digests: of bytes, of a JSON-able value, of a file (content and mode, never mtime)."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def value_digest(value: Any) -> str:
    return digest(json.dumps(value, sort_keys=True, default=str).encode())


WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def value_words(value: Any) -> frozenset[str]:
    """The names a value mentions (for the variable rule: see `variables`)."""
    return frozenset(WORD.findall(json.dumps(value, default=str)))


def file_digest(path: Path) -> str:
    """Content and permission bits, never the mtime."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return digest(f"{mode:o}\0".encode() + path.read_bytes())
