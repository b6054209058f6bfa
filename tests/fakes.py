"""An in-memory engine behind the `Engine` interface, for unit tests of the build."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.engines import Auth, ContainerInfo, EngineError, ImageInfo, VolumeInfo

_ids = itertools.count(1)


def new_id() -> str:
    return "sha256:" + hashlib.sha256(str(next(_ids)).encode()).hexdigest()


@dataclass
class FakeContainer:
    id: str
    name: str
    labels: dict[str, str]
    engine: FakeEngine

    def exec(self, argv: list[str], user: str = "0") -> tuple[int, bytes]:
        self.engine.calls.append(("exec", self.id, " ".join(argv)))
        return 0, b""

    def put(self, directory: str, files: dict[str, bytes]) -> None:
        self.engine.calls.append(("put", self.id, f"{directory}: {' '.join(sorted(files))}"))

    def remove(self) -> None:
        self.engine.containers_by_id.pop(self.id, None)


@dataclass
class FakeEngine:
    """Images by id with their tags; containers; volumes; a registry of pushed tags."""

    images_by_id: dict[str, ImageInfo] = field(default_factory=dict)
    containers_by_id: dict[str, FakeContainer] = field(default_factory=dict)
    volume_store: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    registry: dict[str, str] = field(default_factory=dict)  # REPO:TAG -> digest
    push_failures: dict[str, list[str]] = field(default_factory=dict)  # tag -> errors, in turn
    pullable: set[str] = field(default_factory=set)
    answers: bool = True
    registry_logins: dict[str, dict[str, str]] = field(default_factory=dict)
    insecure_registries: set[str] = field(default_factory=set)
    asks_registries: bool = True  # False: registry_has cannot ask, as on Podman 4.3
    calls: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return "unix:///fake.sock"

    # -- helpers for tests ---------------------------------------------------------------
    def add_image(self, *tags: str, **config: Any) -> str:
        image_id = new_id()
        self.images_by_id[image_id] = ImageInfo(
            id=image_id, tags=list(tags), size=1000, created=dt.datetime.now(dt.UTC), **config
        )
        return image_id

    def tags(self) -> set[str]:
        return {t for i in self.images_by_id.values() for t in i.tags}

    def _find(self, reference: str) -> ImageInfo | None:
        if reference in self.images_by_id:
            return self.images_by_id[reference]
        return next((i for i in self.images_by_id.values() if reference in i.tags), None)

    # -- Engine ----------------------------------------------------------------------------
    def ping(self) -> bool:
        return self.answers

    def version(self) -> str | None:
        return "fake"

    def image(self, reference: str) -> ImageInfo | None:
        self.calls.append(("image", reference))
        return self._find(reference)

    def images(self, repository: str | None = None) -> list[ImageInfo]:
        self.calls.append(("images", repository or ""))
        if repository is None:
            return list(self.images_by_id.values())
        pattern = re.compile("[^/]*".join(map(re.escape, repository.split("*"))))

        def of(tag: str) -> bool:
            return pattern.fullmatch(tag.rsplit(":", 1)[0]) is not None

        return [
            replace(i, tags=[t for t in i.tags if of(t)])
            for i in self.images_by_id.values()
            if any(of(t) for t in i.tags)
        ]

    def tag(self, source: str, target: str) -> None:
        found = self._find(source)
        if found is None:
            raise EngineError(f"No such image: {source}")
        for other in self.images_by_id.values():
            if target in other.tags:
                other.tags.remove(target)
        found.tags.append(target)

    def remove_image(self, reference: str) -> bool:
        found = self._find(reference)
        if found is None:
            return False
        if reference in found.tags:
            found.tags.remove(reference)
            if found.tags:
                return True
        elif found.tags and len(found.tags) > 1:
            return False
        del self.images_by_id[found.id]
        return True

    def import_rootfs(
        self, rootfs: Path, reference: str, changes: list[str], *, timeout: float, log: Path | None
    ) -> None:
        self.add_image(reference)

    def pull(self, reference: str, auth: Auth = None) -> None:
        self.calls.append(("pull", reference))
        if reference not in self.pullable and reference not in self.registry:
            raise EngineError("repository does not exist")
        if self._find(reference) is None:
            self.add_image(reference)

    def registry_has(self, reference: str, auth: Auth = None) -> bool | None:
        return reference in self.registry if self.asks_registries else None

    def push(self, repository: str, tag: str, auth: Auth = None) -> str:
        self.calls.append(("push", f"{repository}:{tag}"))
        failures = self.push_failures.get(tag, [])
        if failures:
            raise EngineError(failures.pop(0))
        found = self._find(f"{repository}:{tag}")
        if found is None:
            raise EngineError(f"tag does not exist: {repository}:{tag}")
        digest = "sha256:" + hashlib.sha256(found.id.encode()).hexdigest()
        self.registry[f"{repository}:{tag}"] = digest
        return digest

    def login(self, registry: str, username: str, password: str) -> None:
        self.calls.append(("login", registry, username))

    def registry_auth(self, registry: str) -> Auth:
        return self.registry_logins.get(registry)

    def registry_insecure(self, registry: str) -> bool:
        return registry in self.insecure_registries

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
    ) -> FakeContainer:
        container_id = new_id()[7:]
        container = FakeContainer(container_id, name or container_id[:12], labels or {}, self)
        self.containers_by_id[container_id] = container
        return container

    def containers(
        self, *, name_prefix: str | None = None, label: str | None = None
    ) -> list[ContainerInfo]:
        self.calls.append(("containers", name_prefix or "", label or ""))
        found = []
        for c in self.containers_by_id.values():
            if name_prefix is not None and not c.name.startswith(name_prefix):
                continue
            if label is not None and label not in [f"{k}={v}" for k, v in c.labels.items()]:
                continue
            found.append(ContainerInfo(c.id, c.name))
        return found

    def remove_container(self, name_or_id: str) -> None:
        for key, c in list(self.containers_by_id.items()):
            if name_or_id in (c.id, c.name):
                del self.containers_by_id[key]

    def removal_command(self, name: str) -> list[str]:
        return ["true", name]

    def packer_path(self) -> list[str]:
        return []

    def volume_exists(self, name: str) -> bool:
        return name in self.volume_store

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self.volume_store.setdefault(name, dict(labels))

    def volumes(self, label: str) -> list[VolumeInfo]:
        key, _, value = label.partition("=")
        return [
            VolumeInfo(name, labels)
            for name, labels in self.volume_store.items()
            if key in labels and (not value or labels[key] == value)
        ]

    def remove_volume(self, name: str) -> bool:
        return self.volume_store.pop(name, None) is not None

    def events(self, filters: dict[str, Any]) -> FakeEvents:
        return FakeEvents()


class FakeEvents:
    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(())

    def close(self) -> None:
        return None
