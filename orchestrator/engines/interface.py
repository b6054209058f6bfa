"""The interface every engine kind implements: `Engine`, and what its calls return."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import RolecastError

Auth = dict[str, str] | None


class EngineError(RolecastError):
    """The engine refused or failed a request; the message is the engine's own reason."""


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: list[str] = field(default_factory=list)
    size: int = 0
    created: dt.datetime = dt.datetime.fromtimestamp(0, dt.UTC)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str


class Container(Protocol):
    """A running container Rolecast started (a gate's)."""

    @property
    def id(self) -> str: ...

    def exec(self, argv: list[str], user: str = "0") -> tuple[int, bytes]: ...

    def put(self, directory: str, files: dict[str, bytes]) -> None:
        """Write `files` (name: content) into `directory`, which is made if missing."""
        ...

    def remove(self) -> None: ...


class EventStream(Protocol):
    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class Engine(Protocol):
    @property
    def address(self) -> str:
        """Where the engine listens (`unix:///var/run/docker.sock`), for messages."""
        ...

    def ping(self) -> bool: ...

    def version(self) -> str | None: ...

    # -- images --------------------------------------------------------------------------
    def image(self, reference: str) -> ImageInfo | None:
        """The image a reference (name:tag or id) names, or None when there is none."""
        ...

    def images(self, repository: str | None = None) -> list[ImageInfo]:
        """Every image, or those of one repository (`*` in it matches within a path
        component): id, tags, size, created and labels (the config, entrypoint to user, is
        `image()`'s)."""
        ...

    def tag(self, source: str, target: str) -> None:
        """Tag the image `source` names as `target` (REPOSITORY:TAG)."""
        ...

    def remove_image(self, reference: str) -> bool:
        """Remove a tag, and the image when that was its last and nothing uses it; never
        forced. False when the engine refused (in use, absent)."""
        ...

    def import_rootfs(
        self, rootfs: Path, reference: str, changes: list[str], *, timeout: float, log: Path | None
    ) -> None:
        """Make an image of a root file system directory (a debootstrap target)."""
        ...

    # -- registries ------------------------------------------------------------------------
    def pull(self, reference: str, auth: Auth = None) -> None: ...

    def registry_has(self, reference: str, auth: Auth = None) -> bool | None:
        """Whether a registry holds the reference, asked through the engine; None when
        this engine cannot ask (the caller asks the registry itself)."""
        ...

    def push(self, repository: str, tag: str, auth: Auth = None) -> str:
        """Push one tag; its digest. EngineError with the registry's reason on failure."""
        ...

    def login(self, registry: str, username: str, password: str) -> None: ...

    def registry_auth(self, registry: str) -> Auth:
        """The credentials the engine's client configuration holds for a registry (the
        Docker config and its credential helpers), or None."""
        ...

    def registry_insecure(self, registry: str) -> bool:
        """Whether the engine speaks plain HTTP to the registry (its insecure registries)."""
        ...

    # -- containers ----------------------------------------------------------------------
    def run(
        self,
        image: str,
        command: list[str] | None = None,
        *,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        entrypoint: str | None = None,
        user: str | None = None,
        interactive: bool = False,
    ) -> Container: ...

    def containers(
        self, *, name_prefix: str | None = None, label: str | None = None
    ) -> list[ContainerInfo]:
        """Containers, running or not, whose name starts with `name_prefix` or that carry
        the label `label` (KEY=VALUE)."""
        ...

    def remove_container(self, name_or_id: str) -> None: ...

    def removal_command(self, name: str) -> list[str]:
        """A command line that removes a container, for a process that outlives Rolecast."""
        ...

    def packer_path(self) -> list[str]:
        """Directories to put first on the PATH of Packer and of Ansible (the build's and
        the gates'), where their `docker` command must be another engine's (Podman's shim);
        none for Docker."""
        ...

    # -- volumes and events ----------------------------------------------------------------
    def volume_exists(self, name: str) -> bool: ...

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a volume with these labels; one of that name is kept as it is."""
        ...

    def volumes(self, label: str) -> list[VolumeInfo]:
        """The volumes that carry the label `label` (KEY or KEY=VALUE)."""
        ...

    def remove_volume(self, name: str) -> bool: ...

    def events(self, filters: dict[str, Any]) -> EventStream:
        """The engine's events from now on, as they happen, until the stream is closed."""
        ...
