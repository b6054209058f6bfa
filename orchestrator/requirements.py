"""Roles and collections from a requirements file, installed for builds with ansible-galaxy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from .errors import BuildFailedError, CommandFailedError
from .runner import run


def install_requirements(
    requirements: Path,
    galaxy: Path,
    *,
    galaxy_tool: str,
    log: Path,
    timeout: float,
    shown: Callable[[Path], str] = str,
) -> dict[str, str]:
    """Install into `galaxy/roles` and `galaxy/collections`; record and return what each
    entry resolved to. `--force`: a changed version in the file always takes effect."""
    for kind, target in (("role", galaxy / "roles"), ("collection", galaxy / "collections")):
        target.mkdir(parents=True, exist_ok=True)
        try:
            run(
                [galaxy_tool, kind, "install", "-r", requirements, "-p", target, "--force"],
                timeout=timeout,
                log_file=log,
                cwd=requirements.parent,
                what=f"ansible-galaxy {kind} install",
            )
        except CommandFailedError as exc:
            reasons = [
                line.split("- ", 1)[-1]
                for line in exc.tail
                if "NOT installed" in line or ("ERROR" in line and "--ignore-errors" not in line)
            ]
            detail = reasons[0] if reasons else (exc.tail or ["no output"])[-1]
            raise BuildFailedError(
                f"requirements {shown(requirements)}: {detail.strip()}; log: {shown(log)}"
            ) from None
    resolved = resolved_requirements(galaxy)
    (galaxy / "resolved.json").write_text(json.dumps(resolved, indent=2, sort_keys=True))
    return resolved


def resolved_requirements(galaxy: Path) -> dict[str, str]:
    """What each installed role and collection resolved to (a version, a git ref)."""
    found: dict[str, str] = {}
    for info in sorted((galaxy / "roles").glob("*/meta/.galaxy_install_info")):
        data = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
        found[info.parent.parent.name] = str(data.get("version") or "unversioned")
    for manifest in sorted((galaxy / "collections").glob("ansible_collections/*/*/MANIFEST.json")):
        meta = json.loads(manifest.read_text(encoding="utf-8")).get("collection_info", {})
        found[f"{meta.get('namespace')}.{meta.get('name')}"] = str(meta.get("version"))
    return found
