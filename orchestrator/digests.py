"""Content digests: of bytes, of a JSON-able value, of a file (content and mode, never mtime)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def value_digest(value: Any) -> str:
    return digest(json.dumps(value, sort_keys=True, default=str).encode())


def file_digest(path: Path) -> str:
    """Content and permission bits, never the mtime."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return digest(f"{mode:o}\0".encode() + path.read_bytes())
