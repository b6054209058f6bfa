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
    """The names a value mentions (for the variable rule: see `variables`), each as its
    `word_digest`: a plain-text value (a password in an inventory) is never kept as is,
    in memory or in `.rolecast/`."""
    return frozenset(word_digest(w) for w in WORD.findall(json.dumps(value, default=str)))


def word_digest(word: str) -> str:
    return hashlib.blake2b(word.encode(), digest_size=10).hexdigest()


def file_digest(path: Path) -> str:
    """Content and permission bits, never the mtime."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return digest(f"{mode:o}\0".encode() + path.read_bytes())
