"""Checks one spec against the project on disk, collecting every problem before any work."""

from __future__ import annotations

import difflib
import functools
import graphlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem, SpecError, UsageError
from ..spec import Image, LoadedSpec, display_path
from ..tagvars import template_problems
from .inventory import (
    InventoryInfo,
    config_inventory,
    config_line,
    config_paths,
    config_value,
    failure_problem,
    vars_file_problems,
)
from .inventory_view import read_inventory
from .model import GALAXY_DIR, ParentKind, Project, ResolvedImage, Role, rel
from .parents import check_cycles, parent_of
from .roles import RoleFinder, requirement_roles

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Variant:
    label: str | None
    inventory: Path | None
    shown: str  # the inventory as the spec (or ansible.cfg, or -i) names it
    named_by: str  # where it is named, for messages


class Resolver:
    """Paths first (roles, requirements, collections, inventory), then each image."""

    def __init__(self, loaded: LoadedSpec, inventory_override: Path | None) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.root = loaded.root.resolve()
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.requirements, provided = self._requirements()
        self.roles_paths = self._roles_paths()
        collections = config_paths(self.root, "collections_path") or config_paths(
            self.root, "collections_paths"
        )
        if self.requirements is not None:
            collections.insert(0, self.root / GALAXY_DIR / "collections")
        self.collections_paths = tuple(dict.fromkeys(collections))
        self.finder = RoleFinder(self.root, self.roles_paths, provided)
        self._inventories: dict[Path, InventoryInfo] = {}
        self.default = self._default_inventory(inventory_override)

    def report(self, loc: Loc, message: str) -> None:
        self.problems.append(self.loaded.problem(loc, message))

    def inside(self, path: Path, loc: Loc, what: str, text: str) -> bool:
        """Paths in rolecast.yml stay inside the project once symlinks are followed: what a
        build reads is what a clone of the repository has. (`-i` on the command line and
        the roles path of ansible.cfg may point anywhere; so may a role that is a symlink.)"""
        if path.is_relative_to(self.root):
            return True
        self.report(
            loc,
            f"{what} {text} resolves to {path}, outside the project directory {self.root}; "
            "paths in rolecast.yml must stay inside it: move or copy it in"
            + (" (or give an inventory elsewhere with -i)" if what == "inventory" else ""),
        )
        return False

    def existing_file(self, text: str | None, loc: Loc, what: str) -> Path | None:
        """A file the spec names, inside the project; reported when it is not there."""
        if text is None:
            return None
        path = (self.root / text).resolve()
        if not self.inside(path, loc, what.removesuffix(" file"), text):
            return None
        if not path.is_file():
            self.report(loc, f"{what} {text} not found (no such file)")
            return None
        return path

    # -- paths -----------------------------------------------------------------------------

    def _requirements(self) -> tuple[Path | None, set[str]]:
        path = self.existing_file(self.spec.requirements, ("requirements",), "requirements file")
        return path, requirement_roles(path) if path is not None else set()

    def _roles_paths(self) -> tuple[Path, ...]:
        """Ansible's order: the spec's roles_path, the project's ansible.cfg roles_path,
        then what requirements installed."""
        spec_paths = [(self.root / p).resolve() for p in self.spec.roles_path]
        for index, path in enumerate(spec_paths):
            text = self.spec.roles_path[index]
            if "roles_path" not in self.spec.model_fields_set:
                continue  # the default, roles/: absent is fine (ansible.cfg may name others)
            if self.inside(path, ("roles_path", index), "roles_path", text) and not path.is_dir():
                self.report(
                    ("roles_path", index), f"directory {rel(path, self.root)} does not exist"
                )
        paths = [*spec_paths, *config_paths(self.root, "roles_path")]
        if self.requirements is not None:
            paths.append(self.root / GALAXY_DIR / "roles")
        return tuple(dict.fromkeys(paths))

    # -- inventories -----------------------------------------------------------------------

    def where(self, loc: Loc) -> str:
        """A spec location as messages name it: `rolecast.yml:3:12 inventory`."""
        return self.loaded.problem(loc, "").location

    def _default_inventory(self, override: Path | None) -> Variant:
        path: Path | None
        if override is not None:
            path = override if override.is_absolute() else Path.cwd() / override
            if not path.exists():
                raise UsageError(f"-i {override}: no such inventory file or directory")
            return Variant(None, path.resolve(), rel(path.resolve(), self.root), f"-i {override}")
        if self.spec.inventory is not None:
            path = self._inventory_path(self.spec.inventory, ("inventory",))
            return Variant(None, path, self.spec.inventory, self.where(("inventory",)))
        path = config_inventory(self.root)
        cfg = display_path(self.root / "ansible.cfg", self.root)
        line = config_line(self.root, "inventory")
        if path is not None and not path.exists():
            self.problems.append(
                Problem(
                    cfg,
                    line,
                    None,
                    "inventory",
                    f"{config_value(self.root, 'inventory')} not found (no such file or "
                    f"directory {display_path(path, self.root)}); Ansible would be unable to "
                    "parse it as an inventory source: create it, or fix `inventory` here",
                )
            )
            path = None
        shown = rel(path, self.root) if path else ""
        return Variant(None, path, shown, f"{cfg}:{line} inventory" if line else cfg)

    def _inventory_path(self, text: str, loc: Loc) -> Path | None:
        path = (self.root / text).resolve()
        if not self.inside(path, loc, "inventory", text):
            return None
        if not path.exists():
            self.report(loc, f"inventory {text} not found (looked in {rel(path, self.root)})")
            return None
        return path

    def inventory(self, variant: Variant) -> InventoryInfo | None:
        """The inventory as Ansible reads it; each file it cannot parse is a problem, once."""
        if variant.inventory is None:
            return None
        if variant.inventory not in self._inventories:
            info = read_inventory(variant.inventory, self.root)
            self._inventories[variant.inventory] = info
            for failure in info.failures:
                self.problems.append(failure_problem(failure, self.root, variant.named_by))
            self.problems.extend(vars_file_problems(variant.inventory, self.root))
        info = self._inventories[variant.inventory]
        return None if info.failures else info

    def check_inventory_names(self, name: str, image: Image, variant: Variant) -> None:
        info = self.inventory(variant)
        if not (image.groups or image.host):
            return
        if info is None:
            if image.host and variant.inventory is None:
                self.report(
                    ("images", name, "host"),
                    f"host {image.host!r} needs an inventory (inventory:, -i or ansible.cfg)",
                )
            return
        for index, group in enumerate(image.groups):
            if group not in info.groups:
                close = difflib.get_close_matches(group, sorted(info.groups), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.report(
                    ("images", name, "groups", index),
                    f"group {group!r} is not in inventory {variant.shown}{hint}",
                )
        if image.host and image.host not in info.hosts:
            close = difflib.get_close_matches(image.host, sorted(info.hosts), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.report(
                ("images", name, "host"),
                f"host {image.host!r} is not in inventory {variant.shown}{hint}",
            )

    # -- images ----------------------------------------------------------------------------

    def closure(self, name: str, image: Image) -> list[Role]:
        closure: list[Role] = []
        for index, ref in enumerate(image.roles):
            at: Loc = ("images", name, "roles", index)
            for role in self.finder.closure([ref.role], functools.partial(self.report, at)):
                if role not in closure:
                    closure.append(role)
        return closure

    def variants(self, name: str, image: Image, kind: ParentKind, parent: str) -> list[Variant]:
        """The image's variants (one per inventory), or the image itself on the default one."""
        parent_variants = set(self.spec.images[parent].variants) if kind == "image" else set()
        found: list[Variant] = []
        for label, text in image.variants.items():
            loc: Loc = ("images", name, "variants", label)
            path = self._inventory_path(text, loc)
            found.append(Variant(label, path, text, self.where(loc)))
            if kind == "image" and parent_variants and label not in parent_variants:
                self.report(loc, f"{parent!r} has no variant {label!r}; give it the same variants")
        if image.variants and self.default.named_by.startswith("-i "):
            self.notes.append(
                f"{self.default.named_by} does not apply to {name}: its variants name their "
                f"own inventories ({', '.join(image.variants)})"
            )
        if not image.variants:
            if parent_variants:
                self.report(
                    ("images", name, "from"),
                    f"{parent!r} has variants ({', '.join(sorted(parent_variants))}); "
                    f"give {name!r} the same variants",
                )
            found.append(self.default)
        return found

    def images(self) -> tuple[dict[str, ResolvedImage], dict[str, set[str]]]:
        """Every image and variant, and the graph of `from:` between the spec's images."""
        spec = self.spec
        images: dict[str, ResolvedImage] = {}
        self.spec_graph: dict[str, set[str]] = {}
        graph: dict[str, set[str]] = {}
        for name, image in spec.images.items():
            kind, parent = parent_of(spec, name, image, self.report)
            self.spec_graph[name] = {parent} if kind == "image" else set()
            closure = tuple(self.closure(name, image))
            playbook = self.existing_file(image.playbook, ("images", name, "playbook"), "playbook")
            verify = self.existing_file(
                image.verify.playbook if image.verify else None,
                ("images", name, "verify", "playbook"),
                "playbook",
            )
            repo_name = image.name or name
            registry = spec.defaults.registry
            templates = tuple(image.tags if image.tags is not None else spec.defaults.tags)
            layering = image.layering or spec.defaults.layering
            parent_variants = set(spec.images[parent].variants) if kind == "image" else set()
            for variant in self.variants(name, image, kind, parent):
                self.check_inventory_names(name, image, variant)
                label = variant.label
                key = f"{name}@{label}" if label else name
                parent_key = parent
                if kind == "image" and label and label in parent_variants:
                    parent_key = f"{parent}@{label}"
                graph[key] = {parent_key} if kind == "image" else set()
                images[key] = ResolvedImage(
                    name=key,
                    spec_name=name,
                    variant=label,
                    spec=image,
                    parent_kind=kind,
                    parent=parent_key,
                    repository=f"{registry}/{repo_name}" if registry else repo_name,
                    tags=tuple(f"{t}-{label}" for t in templates) if label else templates,
                    roles=tuple(image.roles),
                    role_closure=closure,
                    playbook=playbook,
                    inventory=variant.inventory,
                    host=image.host,
                    verify_playbook=verify,
                    layered=layering == "role" and playbook is None and image.playbook is None,
                    services=image.services or spec.defaults.services,
                )
        return images, graph

    def check_tag_templates(self) -> None:
        places: list[tuple[Loc, list[str]]] = [
            (("defaults", "tags"), list(self.spec.defaults.tags))
        ]
        for name, image in self.spec.images.items():
            places.append((("images", name, "tags"), list(image.tags or [])))
        for loc, templates in places:
            for index, text in enumerate(templates):
                for message in template_problems(text):
                    self.report((*loc, index), message)

    def resolve(self) -> Project:
        images, graph = self.images()
        self.check_tag_templates()
        self.problems.extend(self.finder.meta_problems)
        check_cycles(self.spec_graph, self.report)
        if self.problems:
            self.problems = list(dict.fromkeys(self.problems))  # a default two images inherit
            self.problems.sort(
                key=lambda p: (p.file != self.loaded.doc.file, p.line or 0, p.column or 0)
            )
            raise SpecError(self.problems)
        return Project(
            self.root,
            self.loaded,
            self.roles_paths,
            self.default.inventory,
            images,
            tuple(graphlib.TopologicalSorter(graph).static_order()),
            self.requirements,
            self.collections_paths,
            notes=tuple(self.notes),
        )
