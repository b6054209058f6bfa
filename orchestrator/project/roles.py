"""Roles: found on the roles path, their meta dependencies read, and the order Ansible runs them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from ..errors import Problem, SpecError
from ..spec import display_path
from ..yamlsource import load_yaml
from .model import Role, rel

OnProblem = Callable[[str], None]


class RoleFinder:
    """Finds roles on roles_path and reads their meta dependencies, once each."""

    def __init__(self, root: Path, paths: tuple[Path, ...], provided: set[str]) -> None:
        self.root = root
        self.paths = paths
        self.provided = provided
        self.cache: dict[str, Role | None] = {}
        self.meta_problems: list[Problem] = []
        # Where each meta dependency is written: (role directory, dependency) -> location.
        self.written: dict[tuple[Path, str], Problem] = {}

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
        searched = ", ".join(rel(c, self.root) for c in self.candidates(name))
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
            doc = load_yaml(meta, display_path(meta, self.root))
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
            self.written[(role_dir, name)] = doc.problem(("dependencies", index), "")
        return tuple(names)

    def closure(
        self, names: list[str], on_missing: OnProblem, trail: tuple[str, ...] = ()
    ) -> list[Role]:
        """Roles in the order Ansible runs them: dependencies first, each once."""
        out: list[Role] = []
        for name in names:
            if name in trail:
                on_missing(f"role dependency cycle: {' -> '.join((*trail, name))}")
                continue
            role = self.find(name)
            if role is None:
                parent = self.cache.get(trail[-1]) if trail else None
                at = self.written.get((parent.path, name)) if parent else None
                if at is not None:  # named where the dependency is written
                    self.meta_problems.append(
                        Problem(at.file, at.line, at.column, at.path, self.missing_message(name))
                    )
                elif trail:
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
