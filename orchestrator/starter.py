"""`rolecast init`: a starter spec written from the roles a project already has."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import UsageError
from .project.inventory import config_paths, config_value
from .specfile import DEFAULT_SPEC_FILE


def _dependencies(role_dir: Path) -> set[str]:
    meta = role_dir / "meta" / "main.yml"
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) if meta.is_file() else None
    except (OSError, yaml.YAMLError):
        return set()
    deps = data.get("dependencies") if isinstance(data, dict) else None
    names = set()
    for dep in deps or []:
        name = dep if isinstance(dep, str) else (dep or {}).get("role") or (dep or {}).get("name")
        if isinstance(name, str):
            names.add(name)
    return names


# Beside an inventory, not inventories: Ansible reads them with the inventory they sit by.
NOT_INVENTORIES = {"group_vars", "host_vars"}
ROOT_INVENTORIES = (
    "inventory",
    "inventory.ini",
    "inventory.yml",
    "hosts",
    "hosts.ini",
    "hosts.yml",
)


def _inventories(root: Path) -> list[str]:
    """Inventories an Ansible repository keeps: under inventories/ (each environment), else
    a `hosts`/`inventory` file at the top. None when ansible.cfg names one: it is used."""
    if config_value(root, "inventory"):
        return []
    found = sorted(
        p.relative_to(root).as_posix()
        for p in (root / "inventories").glob("*")
        if p.name not in NOT_INVENTORIES
        and not p.name.startswith(".")
        and not p.name.endswith((".md", ".txt", ".rst"))
    )
    return found or [name for name in ROOT_INVENTORIES if (root / name).is_file()]


def _role_dirs(root: Path) -> list[Path]:
    """Where the project keeps its roles: roles/, then the roles_path of its ansible.cfg."""
    found = [root.resolve() / "roles"] + config_paths(root.resolve(), "roles_path")
    inside = [p for p in found if p.is_dir() and p.is_relative_to(root.resolve())]
    return list(dict.fromkeys(inside))


def starter_spec(root: Path) -> str:
    """The text of a starter `rolecast.yml` for the project at `root`."""
    found_in = _role_dirs(root)
    roles_dir = found_in[0] if found_in else root / "roles"
    shown = roles_dir.relative_to(root.resolve()).as_posix() if found_in else "roles"
    roles = sorted(p.name for p in roles_dir.iterdir() if p.is_dir()) if roles_dir.is_dir() else []
    pulled_in: set[str] = set()
    for name in roles:
        pulled_in |= _dependencies(roles_dir / name)
    top = [r for r in roles if r not in pulled_in] or roles
    inventories = _inventories(root)
    image = re.sub(r"[^a-z0-9]+", "-", root.resolve().name.lower()).strip("-") or "image"
    lines = [
        "# Rolecast spec: `rolecast validate` checks it, `rolecast ls` lists the images.",
        "version: 1",
        "",
        "defaults:",
        "  base: debian-bookworm",
        "  tags: [latest]",
        "  connection: auto",
        "  # services run during the build and stop before each commit; skip starts none",
        "  services: run",
        "",
    ]
    if config_value(root, "inventory"):
        lines += [f"# inventory: ansible.cfg's ({config_value(root, 'inventory')}) is used", ""]
    elif inventories:
        lines += [f"inventory: {inventories[0]}", ""]
    else:
        lines += ["# inventory: inventories/staging", ""]
    lines += [
        "bases:",
        "  debian-bookworm:",
        "    suite: bookworm",
        "    variant: minbase",
        "    include: [python3]",
        "",
        "images:",
        f"  {image}:",
    ]
    if roles:
        found = ", ".join(roles)
        lines.append(f"    # roles found under {shown}/: {found}")
        lines.append("    roles:")
        lines += [f"      - {name}" for name in top]
    else:
        books = sorted(p.name for p in (root / "playbooks").glob("*.y*ml"))
        book = "site.yml" if "site.yml" in books else (books[0] if books else "site.yml")
        lines.append("    # no roles found under roles/; add some, or name a playbook:")
        lines.append(f"    playbook: playbooks/{book}")
    lines += [
        "    config:",
        '      cmd: ["/bin/bash"]',
        "",
    ]
    return "\n".join(lines)


def write_starter(root: Path, file: Path | None, force: bool) -> Path:
    target = file if file is not None else root / DEFAULT_SPEC_FILE
    if not target.is_absolute():
        target = root / target
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; pass --force to overwrite it")
    if not _role_dirs(root) and not (root / "playbooks").is_dir():
        raise UsageError(
            f"no roles/ directory under {root} (nor a roles_path in its ansible.cfg, nor "
            "playbooks/); run init at the project root (-C DIR)"
        )
    target.write_text(starter_spec(root), encoding="utf-8")
    return target
