"""What each image consumes: roles (with meta dependencies), playbook, inventory, parent image."""

from __future__ import annotations

import contextlib
import difflib
import graphlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    """An image with every reference in it checked and resolved."""

    name: str
    spec: Image
    parent_kind: ParentKind
    parent: str
    repository: str
    tags: tuple[str, ...]
    roles: tuple[RoleRef, ...]
    role_closure: tuple[Role, ...]
    playbook: Path | None


@dataclass(frozen=True)
class Project:
    root: Path
    loaded: LoadedSpec
    roles_paths: tuple[Path, ...]
    inventory: Path | None
    images: dict[str, ResolvedImage]
    order: tuple[str, ...]

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
        """The named images plus the images they are built from, in build order."""
        from .errors import UsageError

        unknown = [n for n in names if n not in self.images]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, list(self.images), n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise UsageError(
                f"unknown image {', '.join(hints)}; images in {self.loaded.doc.file}: "
                f"{', '.join(self.images)}"
            )
        if not names:
            return list(self.order)
        wanted: set[str] = set()
        stack = list(names)
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

    def __init__(self, root: Path, paths: tuple[Path, ...]) -> None:
        self.root = root
        self.paths = paths
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


def _inventory_groups(path: Path) -> set[str] | None:
    """Group names as Ansible itself reads the inventory; None when Ansible cannot read it."""
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
    except ImportError:  # pragma: no cover - ansible-core is a dependency
        return None
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    return set(manager.groups)


def resolve(loaded: LoadedSpec) -> Project:
    """Check every reference in the spec against the project on disk; SpecError lists them all."""
    spec = loaded.spec
    root = loaded.root.resolve()
    problems: list[Problem] = []

    roles_paths = tuple((root / p).resolve() for p in spec.roles_path)
    for index, path in enumerate(roles_paths):
        if not path.is_dir():
            problems.append(
                loaded.problem(
                    ("roles_path", index), f"directory {_rel(path, root)} does not exist"
                )
            )
    finder = _Roles(root, roles_paths)

    inventory: Path | None = None
    groups: set[str] | None = None
    if spec.inventory is not None:
        inventory = (root / spec.inventory).resolve()
        if not inventory.exists():
            problems.append(
                loaded.problem(
                    ("inventory",),
                    f"inventory {spec.inventory} not found (looked in {_rel(inventory, root)})",
                )
            )
            inventory = None
        elif any(image.groups for image in spec.images.values()):
            groups = _inventory_groups(inventory)

    images: dict[str, ResolvedImage] = {}
    graph: dict[str, set[str]] = {}
    for name, image in spec.images.items():
        loc: tuple[str | int, ...] = ("images", name)
        parent = image.from_ or spec.defaults.base
        kind: ParentKind = "external"
        if parent is None:
            problems.append(
                loaded.problem(loc, "no 'from:'; name a base image here or set defaults.base")
            )
            parent = ""
        elif parent == name:
            problems.append(loaded.problem((*loc, "from"), f"{name!r} cannot be built from itself"))
        elif parent in spec.images:
            kind = "image"
            graph.setdefault(name, set()).add(parent)
        elif parent in spec.bases:
            kind = "base"
        else:
            where = (*loc, "from") if image.from_ else ("defaults", "base")
            close = difflib.get_close_matches(parent, [*spec.images, *spec.bases], n=1)
            if close and ":" not in parent and "/" not in parent:
                problems.append(
                    loaded.problem(
                        where,
                        f"{parent!r} is not an image or base of this file; did you mean "
                        f"{close[0]!r}? (write {parent}:TAG to use a registry image)",
                    )
                )
            elif not REFERENCE_RE.match(parent):
                problems.append(loaded.problem(where, f"{parent!r} is not a valid image reference"))
        graph.setdefault(name, set())

        closure: list[Role] = []
        if image.roles:
            for index, ref in enumerate(image.roles):

                def report(
                    message: str, at: tuple[str | int, ...] = (*loc, "roles", index)
                ) -> None:
                    problems.append(loaded.problem(at, message))

                for role in finder.closure([ref.role], report):
                    if role not in closure:
                        closure.append(role)

        playbook: Path | None = None
        if image.playbook is not None:
            playbook = (root / image.playbook).resolve()
            if not playbook.is_file():
                problems.append(
                    loaded.problem(
                        (*loc, "playbook"), f"playbook {image.playbook} not found (no such file)"
                    )
                )
                playbook = None

        if image.groups and groups is not None:
            for index, group in enumerate(image.groups):
                if group not in groups:
                    close = difflib.get_close_matches(group, sorted(groups), n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    problems.append(
                        loaded.problem(
                            (*loc, "groups", index),
                            f"group {group!r} is not in inventory {spec.inventory}{hint}",
                        )
                    )

        repo_name = image.name or name
        registry = spec.defaults.registry
        images[name] = ResolvedImage(
            name=name,
            spec=image,
            parent_kind=kind,
            parent=parent,
            repository=f"{registry}/{repo_name}" if registry else repo_name,
            tags=tuple(image.tags if image.tags is not None else spec.defaults.tags),
            roles=tuple(image.roles),
            role_closure=tuple(closure),
            playbook=playbook,
        )

    problems.extend(finder.meta_problems)
    order: tuple[str, ...] = ()
    try:
        order = tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))[:-1]
        start = min(cycle)
        cycle = cycle[cycle.index(start) :] + cycle[: cycle.index(start)]
        links = ", ".join(
            f"{a} from {b}" if i else f"{a} is built from {b}"
            for i, (a, b) in enumerate(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        )
        problems.append(
            loaded.problem(
                ("images", start, "from"),
                f"'from:' cycle: {links}; one of these must start from a base image",
            )
        )
    if problems:
        problems.sort(key=lambda p: (p.file != loaded.doc.file, p.line or 0, p.column or 0))
        raise SpecError(problems)
    return Project(root, loaded, roles_paths, inventory, images, order)


def load_project(root: Path, file: Path | None = None) -> Project:
    return resolve(load_spec(root, file))
