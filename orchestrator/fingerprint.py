"""Content hashes of everything that can change an image, per image and per stage.

A manifest maps each input (a file of a role, the parent image, the config, the
variables, an inventory file) to a digest. Stages are the image's own settings first,
then one per role in the order Ansible runs them; each stage's fingerprint chains from
the one before, as in a layer cache. Comparing two manifests says what changed first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .digests import digest, file_digest, value_digest
from .names import host_alias
from .project import Project, ResolvedImage, Role
from .provision import service_manager_version, service_tools
from .spec import RoleRef
from .tools import package_version
from .variables import (
    WORD,
    Variables,
    extra_variables,
    inventory_variables,
    mapping_variables,
    text_words,
)

# Bump when rendering changes what a build produces from the same inputs.
RENDER_VERSION = "2"
IGNORED_DIRS = frozenset({".git", "molecule", "tests", "__pycache__"})
IGNORED_SUFFIXES = (".md", ".pyc")


def tree_files(top: Path) -> list[Path]:
    """Every file under `top` that can change a build (see IGNORED_DIRS and IGNORED_SUFFIXES)."""
    if top.is_file():
        return [top]
    return [
        path
        for path in sorted(top.rglob("*"))
        if path.is_file()
        and not any(p in IGNORED_DIRS for p in path.relative_to(top).parts)
        and not path.name.endswith(IGNORED_SUFFIXES)
    ]


def tree_inputs(top: Path, root: Path) -> dict[str, str]:
    """The digest of every file under `top` that can change a build, by path from `root`."""
    return {_rel(path, root): file_digest(path) for path in tree_files(top)}


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


def _service_manager(services: str) -> list[str]:
    """What the build's service manager is made of: a new version rebuilds."""
    if services != "run":
        return []
    return [service_manager_version(), file_digest(service_tools()["services.py"])]


# Variables whose value is the build host's inventory name (`rolecast-IMAGE`), or holds
# it: a role that reads one writes something of its image's own, and its stage is never
# the same as another image's. (Others' stages of equal fingerprints are shared.)
HOST_NAME_WORDS = frozenset(
    {
        "inventory_hostname",
        "inventory_hostname_short",
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_play_batch",
        "play_hosts",
        "ansible_play_name",
    }
)


def stage_roles(image: ResolvedImage) -> list[tuple[RoleRef, list[Role]]]:
    """The image's listed roles, each with the meta dependencies it is first to bring."""
    closure = list(image.role_closure)
    index = {role.name: i for i, role in enumerate(closure)}
    out: list[tuple[RoleRef, list[Role]]] = []
    done = 0
    for ref in image.roles:
        end = index.get(ref.role, -1) + 1
        out.append((ref, closure[done:end] if end > done else []))
        done = max(done, end)
    return out


def image_manifest(project: Project, image: ResolvedImage, parent_id: str) -> Manifest:
    """The manifest of one image, given the id of the image it is built from.

    Stages, in build order: `image` (what every role sees: the parent image, the
    inventory groups, the tools, ansible.cfg, requirements), one stage per listed role
    (its files, its dependencies' files, the variables it can read), and `commit`
    (config and labels, which change no file in the image).
    """
    root = project.root
    spec = image.spec
    settings: dict[str, str] = {
        "parent image": parent_id,
        "groups": value_digest([spec.groups, image.host, image.variant]),
        "tools": value_digest([package_version("ansible-core"), __version__, RENDER_VERSION]),
        "services": value_digest([image.services, *_service_manager(image.services)]),
    }
    cfg = root / "ansible.cfg"
    if cfg.is_file():
        settings[_rel(cfg, root)] = file_digest(cfg)
    resolved = project.galaxy / "resolved.json"
    if project.requirements is not None:
        settings[_rel(project.requirements, root)] = file_digest(project.requirements)
        if resolved.is_file():
            settings["requirements resolved"] = file_digest(resolved)
    variables = _variables(project, image)
    extra = extra_variables(project.extra_vars, root.resolve())
    settings |= variables.opaque | extra.opaque
    spec_vars = mapping_variables(
        f"{project.loaded.doc.file} images.{image.spec_name}.vars", dict(spec.vars)
    )
    definitions = [*variables.definitions, *spec_vars, *extra.definitions]
    every = Variables(tuple(definitions), {})

    def var_inputs(words: frozenset[str], dynamic: bool) -> dict[str, str]:
        return {f"{d.source}: {d.name}": d.digest for d in every.read_by(words, dynamic)}

    host_name = value_digest(host_alias(image.host, image.slug))
    named: list[tuple[str, dict[str, str]]] = [("image", settings)]
    if image.playbook is not None:
        # A playbook may include anything beside it: its directory is its input.
        files = tree_inputs(image.playbook.parent, root)
        inputs = files | var_inputs(frozenset(), True) | {"host name": host_name}
        named.append((f"playbook {_rel(image.playbook, root)}", inputs))
    for ref, roles in stage_roles(image):
        inputs = {}
        paths: list[Path] = []
        for role in roles:
            if role.path.exists():
                inputs |= tree_inputs(role.path, root)
        for role in _closure_of(image, ref.role):
            if role.path.exists():
                paths += tree_files(role.path)
        if ref.vars:
            inputs[f"{ref.role} vars"] = value_digest(ref.vars)
        words, dynamic = text_words(paths)
        if ref.vars:
            words |= frozenset(WORD.findall(json.dumps(ref.vars, default=str)))
        if dynamic or words & HOST_NAME_WORDS:
            inputs["host name"] = host_name
        named.append((f"role {ref.role}", inputs | var_inputs(words, dynamic)))
    named.append(
        (
            "commit",
            {
                "config": value_digest(spec.config.model_dump()),
                "labels": value_digest(
                    [dict(project.loaded.spec.defaults.labels), dict(spec.labels)]
                ),
            },
        )
    )
    stages: list[Stage] = []
    previous = digest(b"rolecast")
    for name, stage_inputs in named:
        fingerprint = value_digest([previous, name, sorted(stage_inputs.items())])
        stages.append(Stage(name, stage_inputs, fingerprint))
        previous = fingerprint
    return Manifest(stages)


def _variables(project: Project, image: ResolvedImage) -> Variables:
    if image.inventory is None or not image.inventory.exists():
        return Variables((), {})
    return inventory_variables(image.inventory, project.root, image.host, tuple(image.spec.groups))


def _closure_of(image: ResolvedImage, name: str) -> list[Role]:
    """A listed role and every role it depends on, from the image's closure."""
    by_name = {role.name: role for role in image.role_closure}
    out: list[Role] = []
    stack = [name]
    while stack:
        role = by_name.get(stack.pop())
        if role is not None and role not in out:
            out.append(role)
            stack.extend(role.dependencies)
    return out


def first_change(
    old: Manifest, new: Manifest, parent: str = "the image it is built from"
) -> str | None:
    """What changed first, in build order, in words; None when nothing did."""
    found = all_changes(old, new, parent)
    return found[0] if found else None


def all_changes(
    old: Manifest, new: Manifest, parent: str = "the image it is built from"
) -> list[str]:
    """Every input that changed, in build order, in words (`plan --explain`)."""
    found: list[str] = []
    before_stages = {s.name: s for s in old.stages}
    kept_old = [s.name for s in old.stages if s.name in {n.name for n in new.stages}]
    kept_new = [s.name for s in new.stages if s.name in before_stages]
    for stage in new.stages:
        if stage.name not in before_stages:
            found.append(f"{stage.name} was added to the image")
            continue
        if kept_old.index(stage.name) != kept_new.index(stage.name):
            found.append(f"{stage.name} moved to another place in the order")
        before = before_stages[stage.name].inputs
        for key, value in stage.inputs.items():
            if key not in before:
                found.append(f"{key} was added")
            elif before[key] != value:
                found.append(f"{parent} was rebuilt" if key == "parent image" else f"{key} changed")
        found += [f"{key} was removed" for key in before if key not in stage.inputs]
    names = {s.name for s in new.stages}
    found += [f"{s.name} was removed from the image" for s in old.stages if s.name not in names]
    return list(dict.fromkeys(found))
