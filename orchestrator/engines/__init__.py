"""The container engine behind one small interface, and the factory that picks one.

Every call Rolecast makes to an engine (images, containers, exec, tag, pull/push, volumes,
events, registry login) is a method of `Engine` (`interface.py`). The build, the stage
cache, the gates and publish speak only to this interface; `docker.py` is the Docker
implementation (a remote engine of `-H` is the same one with another host). Another engine
kind is one more module here, returned by `connect`.
"""

from __future__ import annotations

from .interface import (
    Auth,
    Container,
    ContainerInfo,
    Engine,
    EngineError,
    EventStream,
    ImageInfo,
    VolumeInfo,
)

__all__ = [
    "Auth",
    "Container",
    "ContainerInfo",
    "Engine",
    "EngineError",
    "EventStream",
    "ImageInfo",
    "VolumeInfo",
    "connect",
    "engine_version",
]


def connect(timeout: int = 60) -> Engine:
    """The engine of DOCKER_HOST or the local socket; ToolMissingError if none answers.
    Podman's when --engine (ROLECAST_ENGINE) says so, or when a unix socket in DOCKER_HOST
    answers as Podman."""
    from .docker import DockerEngine
    from .podman import PodmanEngine, answers_as_podman, chosen_kind

    kind = chosen_kind()
    if kind == "podman":
        return PodmanEngine.connect(timeout)
    engine = DockerEngine.connect(timeout)
    if kind is None and answers_as_podman(engine):
        return PodmanEngine(timeout)
    return engine


def engine_version() -> tuple[str, str | None]:
    """The engine's kind (`docker`, `podman`) and version, None when none answers (for
    `rolecast --version`)."""
    from ..errors import ToolMissingError
    from .podman import chosen_kind

    try:
        engine = connect(timeout=5)
    except ToolMissingError:
        return chosen_kind() or "docker", None
    return getattr(engine, "kind", "docker"), engine.version()
