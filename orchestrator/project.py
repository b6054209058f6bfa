"""What each image consumes: roles (with meta dependencies), playbook, inventory, parent image."""

from __future__ import annotations

import difflib
import graphlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import Problem, SpecError
from .spec import REFERENCE_RE, BaseImage, Image, LoadedSpec, RoleRef, load_spec
from .yamlsource import load_yaml

ParentKind = Literal["image", "base", "external"]


@dataclass(frozen=True)
class Role:
    name: str
    path: Path
    dependencies: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedImage:
    """An image (or one variant of it) with every reference in it checked and resolved."""

    name: str  # as the CLI and reports name it: `web`, or `web@staging` for a variant
    spec_name: str  # the key under `images:`
    variant: str | None
    spec: Image
    parent_kind: ParentKind
    parent: str
    repository: str
    tags: tuple[str, ...]
    roles: tuple[RoleRef, ...]
    role_closure: tuple[Role, ...]
    playbook: Path | None
    inventory: Path | None
    host: str | None
    verify_playbook: Path | None = None

    @property
    def slug(self) -> str:
        """A name safe for files, Packer sources and host names (`web--staging`)."""
        return self.name.replace("@", "--")


GALAXY_DIR = Path(".rolecast") / "galaxy"


@dataclass(frozen=True)
class Project:
    root: Path
    loaded: LoadedSpec
    roles_paths: tuple[Path, ...]
    inventory: Path | None
    images: dict[str, ResolvedImage]
    order: tuple[str, ...]
    requirements: Path | None = None
    collections_paths: tuple[Path, ...] = ()

    @property
    def galaxy(self) -> Path:
        """Where roles and collections from `requirements:` are installed for builds."""
        return self.root / GALAXY_DIR

    @property
    def bases(self) -> dict[str, BaseImage]:
        return dict(self.loaded.spec.bases)

    def base_reference(self, name: str) -> str:
        return base_reference(name, self.loaded.spec.bases[name])

    def parent_reference(self, image: ResolvedImage) -> str:
        """The image reference a build starts from."""
        if image.parent_kind == "image":
            parent = self.images[image.parent]
            return f"{parent.repository}:{parent.tags[0]}" if parent.tags else parent.repository
        if image.parent_kind == "base":
            return self.base_reference(image.parent)
        return image.parent

    def select(self, names: list[str]) -> list[str]:
        """The named images (a spec name means all its variants) and their parents, in order."""
        from .errors import UsageError

        by_spec: dict[str, list[str]] = {}
        for key, image in self.images.items():
            by_spec.setdefault(image.spec_name, []).append(key)
        unknown = [n for n in names if n not in self.images and n not in by_spec]
        if unknown:
            known = list(dict.fromkeys([*by_spec, *self.images]))
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise UsageError(
                f"unknown image {', '.join(hints)}; images in {self.loaded.doc.file}: "
                f"{', '.join(known)}"
            )
        if not names:
            return list(self.order)
        wanted: set[str] = set()
        stack = [key for n in names for key in ([n] if n in self.images else by_spec[n])]
        while stack:
            name = stack.pop()
            if name in wanted:
                continue
            wanted.add(name)
            image = self.images[name]
            if image.parent_kind == "image":
                stack.append(image.parent)
        return [n for n in self.order if n in wanted]


def base_reference(name: str, base: BaseImage) -> str:
    return base.image or f"rolecast/{name}:{base.suite}"


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _Roles:
    """Finds roles on roles_path and reads their meta dependencies, once each."""

    def __init__(self, root: Path, paths: tuple[Path, ...], provided: set[str]) -> None:
        self.root = root
        self.paths = paths
        self.provided = provided
        self.cache: dict[str, Role | None] = {}
        self.meta_problems: list[Problem] = []

    def candidates(self, name: str) -> list[Path]:
        return [p / name for p in self.paths]

    def known(self) -> list[str]:
        names: set[str] = set()
        for path in self.paths:
            if path.is_dir():
                names.update(p.name for p in path.iterdir() if p.is_dir())
        return sorted(names)

    def find(self, name: str) -> Role | None:
        if name in self.cache:
            return self.cache[name]
        role = None
        for candidate in self.candidates(name):
            if candidate.is_dir():
                role = Role(name, candidate, self._dependencies(candidate))
                break
        if role is None and (name in self.provided or name.count(".") == 2):
            # Installed by `requirements:` at build time, or a collection's role.
            role = Role(name, self.paths[-1] / name if self.paths else Path(name), ())
        self.cache[name] = role
        return role

    def missing_message(self, name: str) -> str:
        searched = ", ".join(_rel(c, self.root) for c in self.candidates(name))
        message = f"role {name!r} not found (searched {searched})"
        close = difflib.get_close_matches(name, self.known(), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        return message

    def _dependencies(self, role_dir: Path) -> tuple[str, ...]:
        for meta in (role_dir / "meta" / "main.yml", role_dir / "meta" / "main.yaml"):
            if meta.is_file():
                break
        else:
            return ()
        try:
            doc = load_yaml(meta, _rel(meta, self.root))
        except SpecError as exc:
            self.meta_problems.extend(exc.problems)
            return ()
        data = doc.data or {}
        deps = data.get("dependencies") if isinstance(data, dict) else None
        names: list[str] = []
        for index, dep in enumerate(deps or []):
            name = dep if isinstance(dep, str) else None
            if isinstance(dep, dict):
                name = dep.get("role") or dep.get("name")
            if not isinstance(name, str):
                self.meta_problems.append(
                    doc.problem(("dependencies", index), "a dependency needs a role name")
                )
                continue
            names.append(name)
        return tuple(names)

    def closure(self, names: list[str], on_missing: Any, trail: tuple[str, ...] = ()) -> list[Role]:
        """Roles in the order Ansible runs them: dependencies first, each once."""
        out: list[Role] = []
        for name in names:
            if name in trail:
                on_missing(f"role dependency cycle: {' -> '.join((*trail, name))}")
                continue
            role = self.find(name)
            if role is None:
                if trail:
                    on_missing(f"role {trail[-1]!r} depends on: " + self.missing_message(name))
                else:
                    on_missing(self.missing_message(name))
                continue
            for dep in self.closure(list(role.dependencies), on_missing, (*trail, name)):
                if dep not in out:
                    out.append(dep)
            if role not in out:
                out.append(role)
        return out


@dataclass(frozen=True)
class InventoryInfo:
    groups: frozenset[str]
    hosts: frozenset[str]


def read_inventory(path: Path) -> InventoryInfo:
    """Groups and hosts as Ansible itself reads the inventory (any format it reads)."""
    from .variables import inventory_manager

    manager = inventory_manager(path)
    return InventoryInfo(
        groups=frozenset(manager.groups), hosts=frozenset(h.name for h in manager.get_hosts())
    )


def config_paths(root: Path, key: str, separator: str = ":") -> list[Path]:
    """Existing paths the project's ansible.cfg gives for `key` in [defaults], resolved."""
    import configparser

    cfg = root / "ansible.cfg"
    if not cfg.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(cfg, encoding="utf-8")
    except configparser.Error:
        return []
    value = parser.get("defaults", key, fallback=None) or ""
    paths = [
        (cfg.parent / Path(part.strip()).expanduser()).resolve()
        for part in value.split(separator)
        if part.strip()
    ]
    return [p for p in paths if p.exists()]


def config_inventory(root: Path) -> Path | None:
    """The inventory the project's ansible.cfg names, as ansible-playbook would use it."""
    found = config_paths(root, "inventory", ",")
    return found[0] if found else None


def requirement_roles(path: Path) -> set[str]:
    """Role names a requirements file will install (its `name`, else one from `src`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return set()
    entries = data.get("roles", []) if isinstance(data, dict) else data
    names: set[str] = set()
    for entry in entries or []:
        if isinstance(entry, str):
            entry = {"src": entry}
        if not isinstance(entry, dict):
            continue
        name = entry.get("name")
        if not name and isinstance(entry.get("src"), str):
            src = entry["src"].rstrip("/").split(",")[0]
            name = src.rsplit("/", 1)[-1].removesuffix(".git")
            name = re.sub(r"\.(tar\.gz|tgz|tar)$", "", name)
        if isinstance(name, str) and name:
            names.add(name)
    return names


class _Resolver:
    """Checks one spec against the project on disk, collecting every problem."""

    def __init__(self, loaded: LoadedSpec, inventory_override: Path | None) -> None:
        self.loaded = loaded
        self.spec = loaded.spec
        self.root = loaded.root.resolve()
        self.problems: list[Problem] = []
        spec_paths = [(self.root / p).resolve() for p in self.spec.roles_path]
        for index, path in enumerate(spec_paths):
            if not self.inside(
                path, ("roles_path", index), "roles_path", self.spec.roles_path[index]
            ):
                continue
            if not path.is_dir():
                self.report(
                    ("roles_path", index), f"directory {_rel(path, self.root)} does not exist"
                )
        self.requirements: Path | None = None
        provided: set[str] = set()
        galaxy = self.root / GALAXY_DIR
        if self.spec.requirements is not None:
            self.requirements = (self.root / self.spec.requirements).resolve()
            if not self.inside(
                self.requirements, ("requirements",), "requirements", self.spec.requirements
            ):
                self.requirements = None
            elif not self.requirements.is_file():
                self.report(
                    ("requirements",),
                    f"requirements file {self.spec.requirements} not found (no such file)",
                )
                self.requirements = None
            else:
                provided = requirement_roles(self.requirements)
        # Ansible's order: the spec's roles_path, the project's ansible.cfg roles_path,
        # then what requirements installed.
        paths = [*spec_paths, *config_paths(self.root, "roles_path")]
        if self.requirements is not None:
            paths.append(galaxy / "roles")
        self.roles_paths = tuple(dict.fromkeys(paths))
        collections = config_paths(self.root, "collections_path") or config_paths(
            self.root, "collections_paths"
        )
        if self.requirements is not None:
            collections.insert(0, galaxy / "collections")
        self.collections_paths = tuple(dict.fromkeys(collections))
        self.finder = _Roles(self.root, self.roles_paths, provided)
        self._inventories: dict[Path, InventoryInfo | None] = {}
        self.inventory = self._default_inventory(inventory_override)

    def report(self, loc: tuple[str | int, ...], message: str) -> None:
        self.problems.append(self.loaded.problem(loc, message))

    def inside(self, path: Path, loc: tuple[str | int, ...], what: str, text: str) -> bool:
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

    def _default_inventory(self, override: Path | None) -> Path | None:
        if override is not None:
            path = override if override.is_absolute() else Path.cwd() / override
            if not path.exists():
                from .errors import UsageError

                raise UsageError(f"-i {override}: no such inventory file or directory")
            return path.resolve()
        if self.spec.inventory is not None:
            return self._inventory_path(self.spec.inventory, ("inventory",))
        return config_inventory(self.root)

    def _inventory_path(self, text: str, loc: tuple[str | int, ...]) -> Path | None:
        path = (self.root / text).resolve()
        if not self.inside(path, loc, "inventory", text):
            return None
        if not path.exists():
            self.report(loc, f"inventory {text} not found (looked in {_rel(path, self.root)})")
            return None
        return path

    def inventory_info(self, path: Path) -> InventoryInfo | None:
        if path not in self._inventories:
            try:
                self._inventories[path] = read_inventory(path)
            except Exception:
                self._inventories[path] = None
        return self._inventories[path]

    def parent_of(self, name: str, image: Image) -> tuple[ParentKind, str]:
        loc: tuple[str | int, ...] = ("images", name)
        parent = image.from_ or self.spec.defaults.base
        if parent is None:
            self.report(loc, "no 'from:'; name a base image here or set defaults.base")
            return "external", ""
        if parent == name:
            self.report((*loc, "from"), f"{name!r} cannot be built from itself")
            return "external", parent
        if parent in self.spec.images:
            return "image", parent
        if parent in self.spec.bases:
            return "base", parent
        where = (*loc, "from") if image.from_ else ("defaults", "base")
        close = difflib.get_close_matches(parent, [*self.spec.images, *self.spec.bases], n=1)
        if close and ":" not in parent and "/" not in parent:
            self.report(
                where,
                f"{parent!r} is not an image or base of this file; did you mean "
                f"{close[0]!r}? (write {parent}:TAG to use a registry image)",
            )
        elif not REFERENCE_RE.match(parent):
            self.report(where, f"{parent!r} is not a valid image reference")
        return "external", parent

    def closure(self, name: str, image: Image) -> list[Role]:
        closure: list[Role] = []
        for index, ref in enumerate(image.roles):

            def report(
                message: str, at: tuple[str | int, ...] = ("images", name, "roles", index)
            ) -> None:
                self.report(at, message)

            for role in self.finder.closure([ref.role], report):
                if role not in closure:
                    closure.append(role)
        return closure

    def playbook(self, name: str, image: Image) -> Path | None:
        if image.playbook is None:
            return None
        path = (self.root / image.playbook).resolve()
        if not self.inside(path, ("images", name, "playbook"), "playbook", image.playbook):
            return None
        if not path.is_file():
            self.report(
                ("images", name, "playbook"), f"playbook {image.playbook} not found (no such file)"
            )
            return None
        return path

    def verify_playbook(self, name: str, image: Image) -> Path | None:
        if image.verify is None or image.verify.playbook is None:
            return None
        path = (self.root / image.verify.playbook).resolve()
        loc: tuple[str | int, ...] = ("images", name, "verify", "playbook")
        if not self.inside(path, loc, "playbook", image.verify.playbook):
            return None
        if not path.is_file():
            self.report(
                ("images", name, "verify", "playbook"),
                f"playbook {image.verify.playbook} not found (no such file)",
            )
            return None
        return path

    def check_inventory_names(
        self, name: str, image: Image, inventory: Path | None, shown: str
    ) -> None:
        if not (image.groups or image.host):
            return
        info = self.inventory_info(inventory) if inventory is not None else None
        if info is None:
            if image.host:
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
                    f"group {group!r} is not in inventory {shown}{hint}",
                )
        if image.host and image.host not in info.hosts:
            close = difflib.get_close_matches(image.host, sorted(info.hosts), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.report(
                ("images", name, "host"), f"host {image.host!r} is not in inventory {shown}{hint}"
            )

    def resolve(self) -> Project:
        spec = self.spec
        images: dict[str, ResolvedImage] = {}
        graph: dict[str, set[str]] = {}
        spec_graph: dict[str, set[str]] = {}
        for name, image in spec.images.items():
            kind, parent = self.parent_of(name, image)
            spec_graph[name] = {parent} if kind == "image" else set()
            closure = tuple(self.closure(name, image))
            playbook = self.playbook(name, image)
            verify_playbook = self.verify_playbook(name, image)
            repo_name = image.name or name
            registry = spec.defaults.registry
            templates = tuple(image.tags if image.tags is not None else spec.defaults.tags)
            parent_variants = set(spec.images[parent].variants) if kind == "image" else set()
            variants: list[tuple[str | None, Path | None, str]] = []
            if image.variants:
                for label, text in image.variants.items():
                    path = self._inventory_path(text, ("images", name, "variants", label))
                    variants.append((label, path, text))
                    if kind == "image" and parent_variants and label not in parent_variants:
                        self.report(
                            ("images", name, "variants", label),
                            f"{parent!r} has no variant {label!r}; give it the same variants",
                        )
            else:
                if parent_variants:
                    self.report(
                        ("images", name, "from"),
                        f"{parent!r} has variants ({', '.join(sorted(parent_variants))}); "
                        f"give {name!r} the same variants",
                    )
                default_shown = spec.inventory or (
                    _rel(self.inventory, self.root) if self.inventory else ""
                )
                variants.append((None, self.inventory, default_shown))
            for variant, inventory, inventory_shown in variants:
                self.check_inventory_names(name, image, inventory, inventory_shown)
                key = f"{name}@{variant}" if variant else name
                parent_key = parent
                if kind == "image" and variant and variant in parent_variants:
                    parent_key = f"{parent}@{variant}"
                graph[key] = {parent_key} if kind == "image" else set()
                images[key] = ResolvedImage(
                    name=key,
                    spec_name=name,
                    variant=variant,
                    spec=image,
                    parent_kind=kind,
                    parent=parent_key,
                    repository=f"{registry}/{repo_name}" if registry else repo_name,
                    tags=tuple(f"{t}-{variant}" for t in templates) if variant else templates,
                    roles=tuple(image.roles),
                    role_closure=closure,
                    playbook=playbook,
                    inventory=inventory,
                    host=image.host,
                    verify_playbook=verify_playbook,
                )
        self.problems.extend(self.finder.meta_problems)
        self._check_cycles(spec_graph)
        if self.problems:
            self.problems.sort(
                key=lambda p: (p.file != self.loaded.doc.file, p.line or 0, p.column or 0)
            )
            raise SpecError(self.problems)
        order = tuple(graphlib.TopologicalSorter(graph).static_order())
        return Project(
            self.root,
            self.loaded,
            self.roles_paths,
            self.inventory,
            images,
            order,
            self.requirements,
            self.collections_paths,
        )

    def _check_cycles(self, graph: dict[str, set[str]]) -> None:
        try:
            tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))[:-1]
            start = min(cycle)
            cycle = cycle[cycle.index(start) :] + cycle[: cycle.index(start)]
            links = ", ".join(
                f"{a} from {b}" if i else f"{a} is built from {b}"
                for i, (a, b) in enumerate(zip(cycle, cycle[1:] + cycle[:1], strict=True))
            )
            self.report(
                ("images", start, "from"),
                f"'from:' cycle: {links}; one of these must start from a base image",
            )


def resolve(loaded: LoadedSpec, inventory: Path | None = None) -> Project:
    """Check every reference in the spec against the project on disk; SpecError lists them all."""
    return _Resolver(loaded, inventory).resolve()


def load_project(root: Path, file: Path | None = None, inventory: Path | None = None) -> Project:
    return resolve(load_spec(root, file), inventory)
