"""Content hashes of everything that can change an image, per image and per stage.

A manifest maps each input (a file of a role, the parent image, the config, the
variables, an inventory file) to a digest. Stages are the image's own settings first,
then one per role in the order Ansible runs them; each stage's fingerprint chains from
the one before, as in a layer cache. Comparing two manifests says what changed first.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .project import Project, ResolvedImage
from .tools import package_version

# Bump when rendering changes what a build produces from the same inputs.
RENDER_VERSION = "1"
IGNORED_DIRS = frozenset({".git", "molecule", "tests", "__pycache__"})
IGNORED_SUFFIXES = (".md", ".pyc")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def value_digest(value: Any) -> str:
    return digest(json.dumps(value, sort_keys=True, default=str).encode())


def file_digest(path: Path) -> str:
    """Content and permission bits, never the mtime."""
    mode = stat.S_IMODE(path.stat().st_mode)
    return digest(f"{mode:o}\0".encode() + path.read_bytes())


def tree_inputs(top: Path, root: Path) -> dict[str, str]:
    """Every file under `top` that can change a build, by path relative to `root`."""
    found: dict[str, str] = {}
    if top.is_file():
        found[_rel(top, root)] = file_digest(top)
        return found
    for path in sorted(top.rglob("*")):
        parts = path.relative_to(top).parts
        if any(p in IGNORED_DIRS for p in parts) or path.name.endswith(IGNORED_SUFFIXES):
            continue
        if path.is_file():
            found[_rel(path, root)] = file_digest(path)
    return found


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: dict[str, str]
    fingerprint: str


@dataclass(frozen=True)
class Manifest:
    stages: list[Stage] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.stages[-1].fingerprint if self.stages else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "stages": [
                {"name": s.name, "fingerprint": s.fingerprint, "inputs": s.inputs}
                for s in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            [
                Stage(str(s["name"]), dict(s["inputs"]), str(s["fingerprint"]))
                for s in data.get("stages", [])
            ]
        )


def image_manifest(project: Project, image: ResolvedImage, parent_id: str) -> Manifest:
    """The manifest of one image, given the id of the image it is built from."""
    root = project.root
    spec = image.spec
    settings: dict[str, str] = {
        "parent image": parent_id,
        "config": value_digest(spec.config.model_dump()),
        "vars": value_digest(spec.vars),
        "groups": value_digest([spec.groups, image.host, image.variant]),
        "labels": value_digest([dict(project.loaded.spec.defaults.labels), dict(spec.labels)]),
        "tools": value_digest([package_version("ansible-core"), __version__, RENDER_VERSION]),
    }
    if image.inventory is not None:
        settings |= tree_inputs(image.inventory, root)
    cfg = root / "ansible.cfg"
    if cfg.is_file():
        settings[_rel(cfg, root)] = file_digest(cfg)
    resolved = project.galaxy / "resolved.json"
    if project.requirements is not None:
        settings[_rel(project.requirements, root)] = file_digest(project.requirements)
        if resolved.is_file():
            settings["requirements resolved"] = file_digest(resolved)
    if image.playbook is not None:
        # A playbook may include anything beside it: its directory is its input.
        settings |= tree_inputs(image.playbook.parent, root)
    stages: list[Stage] = []
    previous = digest(b"rolecast")
    for name, inputs in [("image", settings), *_role_stages(image, root)]:
        fingerprint = value_digest([previous, name, sorted(inputs.items())])
        stages.append(Stage(name, inputs, fingerprint))
        previous = fingerprint
    return Manifest(stages)


def _role_stages(image: ResolvedImage, root: Path) -> list[tuple[str, dict[str, str]]]:
    params = {ref.role: ref.vars for ref in image.roles}
    stages = []
    for role in image.role_closure:
        inputs = tree_inputs(role.path, root) if role.path.exists() else {}
        if params.get(role.name):
            inputs[f"{role.name} vars"] = value_digest(params[role.name])
        stages.append((f"role {role.name}", inputs))
    return stages


def first_change(old: Manifest, new: Manifest) -> str | None:
    """What changed first, in build order, in words; None when nothing did."""
    for index, stage in enumerate(new.stages):
        if index >= len(old.stages) or old.stages[index].name != stage.name:
            return f"{stage.name} was added to the image"
        before = old.stages[index].inputs
        for key, value in stage.inputs.items():
            if key not in before:
                return f"{key} was added"
            if before[key] != value:
                if key == "parent image":
                    return "the image it is built from was rebuilt"
                return f"{key} changed"
        for key in before:
            if key not in stage.inputs:
                return f"{key} was removed"
    if len(old.stages) > len(new.stages):
        return f"{old.stages[len(new.stages)].name} was removed from the image"
    return None
