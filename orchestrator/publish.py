"""Pushing to registries: an image's tags (moving tags last), stages for a shared cache, and
`rolecast push` of the last builds; credentials, bounded retries.

Credentials come from ROLECAST_REGISTRY_USERNAME / ROLECAST_REGISTRY_PASSWORD when both
are set, else from the Docker config (`~/.docker/config.json` and its credential
helpers, as `docker push` uses them; `rolecast login` writes it). The password is
passed to the engine in the API request's auth header, never in an argv, a file
of Rolecast's or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import engines
from .credentials import credentials as credentials  # build.stages takes it from here
from .engines import Engine, EngineError
from .errors import BuildFailedError, RolecastError
from .project import Project, ResolvedImage
from .registry import Reference, Registry, RegistryError
from .report import BuildReport, Event, ImageResult, OnEvent, Outcome, Phase
from .spec import names_a_host
from .state import LastBuild
from .tags import TagRules

ATTEMPTS = 4
BACKOFF = 1.0  # seconds before the second attempt; doubles after each
AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied")
Say = Callable[[str], None]


class PushError(BuildFailedError):
    """A push failed: the registry refused the credentials, or stayed unreachable."""


@dataclass(frozen=True)
class Pushed:
    reference: str
    digest: str

    def as_dict(self) -> dict[str, str]:
        return {"reference": self.reference, "digest": self.digest}


def registry_of(repository: str) -> str:
    first = repository.split("/", 1)[0]
    if "/" in repository and names_a_host(first):
        return first
    return "docker.io"


def _is_auth_error(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in AUTH_WORDS)


def push_one(
    engine: Engine,
    repository: str,
    tag: str,
    *,
    auth: dict[str, str] | None,
    say: Say,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
) -> Pushed:
    """Push one tag; transient failures are retried `attempts` times with backoff, an
    authentication failure is not retried."""
    registry = registry_of(repository)
    reference = f"{repository}:{tag}"
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return Pushed(reference, engine.push(repository, tag, auth))
        except EngineError as exc:
            last = str(exc) or type(exc).__name__
        if _is_auth_error(last):
            raise PushError(
                f"push of {reference}: registry {registry} refused the credentials "
                f"({_short(last)}); not retried. Give them with `rolecast login {registry}` "
                "or ROLECAST_REGISTRY_USERNAME / ROLECAST_REGISTRY_PASSWORD"
            )
        if attempt < attempts:
            wait = backoff * 2 ** (attempt - 1)
            say(f"push of {reference} failed ({_short(last)}); retry {attempt} in {wait:.0f} s")
            time.sleep(wait)
    raise PushError(
        f"push of {reference}: registry {registry} failed {attempts} times; "
        f"last error: {_short(last)}"
    )


def push_image(
    engine: Engine,
    repository: str,
    tags: list[str],
    moving: set[str],
    *,
    say: Say,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
) -> list[Pushed]:
    """Push every tag: the immutable ones first; the moving ones (`latest`, `1.4`, a
    branch) only once all immutable ones are in the registry."""
    auth = credentials()
    ordered = [t for t in tags if t not in moving] + [t for t in tags if t in moving]
    pushed: list[Pushed] = []
    for tag in ordered:
        say(f"pushing {repository}:{tag}")
        pushed.append(
            push_one(
                engine, repository, tag, auth=auth, say=say, attempts=attempts, backoff=backoff
            )
        )
    return pushed


def publish_image(
    engine: Engine, image: ResolvedImage, rules: TagRules, fingerprint: str, on_event: OnEvent
) -> list[dict[str, str]]:
    """Push every tag of one built image, as the rules resolve them for its fingerprint."""
    moving: set[str] = set()
    tags = rules.for_image(image, fingerprint, moving)
    on_event(Event(image.name, Phase.PUSHING, f"{image.repository} ({', '.join(tags)})"))
    pushed = push_image(
        engine,
        image.repository,
        tags,
        moving,
        say=lambda text: on_event(Event(image.name, Phase.PUSH, text)),
    )
    return [p.as_dict() for p in pushed]


def copy_image(
    engine: Engine,
    image: ResolvedImage,
    rules: TagRules,
    fingerprint: str,
    source: str,
    on_event: OnEvent,
) -> list[dict[str, str]] | None:
    """Every tag of an image the shared cache holds as `source`, added in the registry
    itself (its blobs mounted into the image's repository, its manifest put under each
    tag): nothing pulled, nothing run. Immutable tags first, moving tags last. None when
    `source` is in another registry (then the image must be pulled and pushed)."""
    src, target = Reference.parse(source), Reference.parse(f"{image.repository}:x")
    if src.registry != target.registry:
        return None
    moving: set[str] = set()
    tags = rules.for_image(image, fingerprint, moving)
    on_event(Event(image.name, Phase.PUSHING, f"{image.repository} ({', '.join(tags)})"))
    pushed: list[Pushed] = []
    try:
        client = Registry.of(engine, target.registry)
        manifest = client.manifest(src.repository, src.tag)
        if manifest is None:
            raise RegistryError(f"{source} is gone from the registry")
        for tag in [t for t in tags if t not in moving] + [t for t in tags if t in moving]:
            reference = f"{image.repository}:{tag}"
            on_event(Event(image.name, Phase.PUSH, f"adding {reference} in the registry"))
            digest = client.copy(src.repository, manifest, target.repository, tag)
            pushed.append(Pushed(reference, digest))
    except (RegistryError, ValueError) as exc:  # ValueError: not a manifest
        raise PushError(f"image {image.name}: {exc}") from None
    return [p.as_dict() for p in pushed]


def share_stages(
    engine: Engine, stages: list[tuple[str, str, str]], *, say: Say
) -> tuple[list[str], str | None]:
    """Push stages to a shared cache: (local reference, shared reference, stage name) each.
    Returns the names sent, and what stopped the rest (None when all went)."""
    auth = credentials()
    sent: list[str] = []
    for local, remote, name in stages:
        repository, tag = remote.rsplit(":", 1)
        try:
            engine.tag(local, remote)
            push_one(engine, repository, tag, auth=auth, say=say)
            sent.append(name)
        except RolecastError as exc:
            return sent, str(exc)
        finally:
            engine.remove_image(remote)
    return sent, None


def push_last_builds(
    project: Project, names: list[str], rules: TagRules, on_event: OnEvent
) -> BuildReport:
    """`rolecast push`: push the last build of each named image, tags as they resolve now."""
    selected = project.select(names)
    for name in selected:
        rules.for_image(project.images[name], None)  # bad tags fail before any push
    engine = engines.connect()
    report = BuildReport()
    for name in selected:
        on_event(Event(name, Phase.WAITING))
    for name in selected:
        image = project.images[name]
        last = LastBuild.read(project, image)
        if last is None or engine.image(last.image_id) is None:
            raise BuildFailedError(
                f"image {name}: no build of it in this Docker engine; rolecast build {name} first"
            )
        tags = rules.for_image(image, last.fingerprint)
        for tag in tags:
            engine.tag(last.image_id, f"{image.repository}:{tag}")
        pushed = publish_image(engine, image, rules, last.fingerprint, on_event)
        report.images.append(
            ImageResult(
                name=name,
                result=Outcome.PUSHED,
                tags=[f"{image.repository}:{t}" for t in tags],
                image_id=last.image_id,
                fingerprint=last.fingerprint,
                pushed=pushed,
            )
        )
        on_event(Event(name, Phase.DONE, f"pushed {len(pushed)} tags"))
    return report


def login(registry: str, username: str, password: str) -> None:
    """Check and store credentials as `docker login` does; the password never in an argv."""
    engines.connect().login(registry, username, password)


def _short(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 300 else text[:297] + "..."
