"""What each image consumes: roles (with meta dependencies), playbook, inventory, parent image.

`model` is what the rest of Rolecast sees (Project, ResolvedImage); `resolver` checks a
spec against the disk, helped by `roles`, `inventory` and `parents`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..extra_vars import ExtraVars
from ..spec import LoadedSpec, load_spec
from .inventory import InventoryInfo, config_inventory, config_paths
from .inventory_view import read_inventory
from .model import GALAXY_DIR, ParentKind, Project, ResolvedImage, Role, base_reference
from .resolver import Resolver
from .roles import requirement_roles

__all__ = [
    "GALAXY_DIR",
    "InventoryInfo",
    "ParentKind",
    "Project",
    "ResolvedImage",
    "Role",
    "base_reference",
    "config_inventory",
    "config_paths",
    "load_project",
    "read_inventory",
    "requirement_roles",
    "resolve",
]


def resolve(loaded: LoadedSpec, inventory: Path | None = None) -> Project:
    """Check every reference in the spec against the project on disk; SpecError lists them all."""
    return Resolver(loaded, inventory).resolve()


def load_project(
    root: Path,
    file: Path | None = None,
    inventory: Path | None = None,
    extra_vars: ExtraVars | None = None,
) -> Project:
    project = resolve(load_spec(root, file), inventory)
    return replace(project, extra_vars=extra_vars) if extra_vars else project
