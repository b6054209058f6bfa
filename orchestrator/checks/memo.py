"""A check that passed is not run again on the same files: the files' paths, sizes and
modification times (and what else the checks depend on) make a key; the key of the last
check that passed is kept in `.rolecast/checked`. A no-op build then pays a few stats,
not Ansible's loaders."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .. import __version__
from ..project import Project, ResolvedImage

MEMO_FILE = Path(".rolecast") / "checked"


def _walk(top: Path) -> list[Path]:
    """The files under `top`, but hidden directories (.git, .rolecast: logs change there)."""
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(top):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found += [Path(directory) / name for name in sorted(files)]
    return found


def _files(project: Project, images: list[ResolvedImage]) -> list[Path]:
    """Every file the checks read for these images (and the project's own settings)."""
    root = project.root
    found = [project.loaded.path, root / "ansible.cfg"]
    for image in images:
        for role in image.role_closure:
            found += _walk(role.path) if role.path.is_dir() else []
        for playbook in (image.playbook, image.verify_playbook):
            if playbook is not None:
                found += _walk(playbook.parent)
        if image.inventory is not None:
            top = image.inventory if image.inventory.is_dir() else image.inventory.parent
            found += _walk(top)
    return list(dict.fromkeys(found))


def check_key(project: Project, images: list[ResolvedImage], context: Iterable[str]) -> str:
    """What a passing check depends on, as one digest."""
    digest = hashlib.sha256(__version__.encode())
    for part in (*context, *sorted(i.name for i in images)):
        digest.update(b"\0" + part.encode())
        source = part.partition("=")[2].rpartition("@")[2]  # a vault password file
        if part.startswith("--vault") and Path(source).exists():
            stat = Path(source).stat()
            digest.update(f"\0{stat.st_size}:{stat.st_mtime_ns}".encode())
    for path in _files(project, images):
        try:
            stat = path.stat()
        except OSError:
            digest.update(f"\0{path}:absent".encode())
            continue
        digest.update(f"\0{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def passed_before(project: Project, key: str) -> bool:
    try:
        data = json.loads((project.root / MEMO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and key in data.get("passed", [])


def remember_pass(project: Project, key: str) -> None:
    """Keep the key of a passing check (the last few: builds of different images differ)."""
    path = project.root / MEMO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        passed = [k for k in data.get("passed", []) if k != key] if isinstance(data, dict) else []
    except (OSError, ValueError):
        passed = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}")
        temporary.write_text(json.dumps({"passed": [key, *passed][:16]}), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass  # a read-only checkout checks every time
