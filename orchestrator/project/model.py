"""What the rest of Rolecast sees of a project: its images, each with every reference resolved."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from ..errors import UsageError
from ..extra_vars import ExtraVars
from ..names import project_identity
from ..spec import BaseImage, Image, LoadedSpec, RoleRef, Services

ParentKind = Literal["image", "base", "external"]
GALAXY_DIR = Path(".rolecast") / "galaxy"


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
    layered: bool = False  # one cached stage per listed role (`layering: role`, no playbook)
    services: Services = "run"  # `services:` of the image, or of `defaults`

    @property
    def slug(self) -> str:
        """A name safe for files, Packer sources and host names (`web--staging`)."""
        return self.name.replace("@", "--")


def base_reference(name: str, base: BaseImage) -> str:
    return base.image or f"rolecast/{name}:{base.suite}"


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
    extra_vars: ExtraVars = ExtraVars()  # -e of this run: in every fingerprint and build
    notes: tuple[str, ...] = ()  # what the user should know, though nothing is wrong

    @property
    def galaxy(self) -> Path:
        """Where roles and collections from `requirements:` are installed for builds."""
        return self.root / GALAXY_DIR

    @cached_property
    def identity(self) -> str:
        """Scopes what the project leaves in an engine (see `names`)."""
        return project_identity(self.root)

    @property
    def bases(self) -> dict[str, BaseImage]:
        return dict(self.loaded.spec.bases)

    @property
    def packer_plugins(self) -> dict[str, str]:
        """The versions of Packer's plugins (Packer 1.7 and later), by name."""
        return dict(self.loaded.spec.packer_plugins.model_dump())

    def base_reference(self, name: str) -> str:
        return base_reference(name, self.loaded.spec.bases[name])

    def parent_reference(self, image: ResolvedImage) -> str:
        """The image reference a build starts from, as the spec names it."""
        if image.parent_kind == "image":
            parent = self.images[image.parent]
            return f"{parent.repository}:{parent.tags[0]}" if parent.tags else parent.repository
        if image.parent_kind == "base":
            return self.base_reference(image.parent)
        return image.parent

    def select(self, names: list[str]) -> list[str]:
        """The named images (a spec name means all its variants) and their parents, in order."""
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

    def parent_in_spec(self, name: str) -> str | None:
        """The image of this file that `name` is built from, if any."""
        image = self.images[name]
        return image.parent if image.parent_kind == "image" else None


def rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
