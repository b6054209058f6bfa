"""Pushing an image's tags to its registry: credentials, bounded retries, moving tags last.

Credentials come from ROLECAST_REGISTRY_USERNAME / ROLECAST_REGISTRY_PASSWORD when both
are set, else from the Docker config (`~/.docker/config.json` and its credential
helpers, as `docker push` uses them; `rolecast login` writes it). The password is
passed to the Docker engine in the API request's auth header, never in an argv, a file
of Rolecast's or a log line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BuildFailedError
from .spec import names_a_host

ATTEMPTS = 4
BACKOFF = 1.0  # seconds before the second attempt; doubles after each
AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied")


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


ENV_USERNAME = "ROLECAST_REGISTRY_USERNAME"
ENV_PASSWORD = "ROLECAST_REGISTRY_PASSWORD"
_TAKEN: dict[str, str] = {}


def take_credentials() -> None:
    """Move ROLECAST_REGISTRY_USERNAME/PASSWORD from the environment into this process's
    memory: no program Rolecast starts (Packer, Ansible, gates, docker) inherits them."""
    for key in ENV_USERNAME, ENV_PASSWORD:
        value = os.environ.pop(key, None)
        if value is not None:
            _TAKEN[key] = value


def credentials() -> dict[str, str] | None:
    """Credentials from the environment, or None for the Docker config's."""
    username = _TAKEN.get(ENV_USERNAME) or os.environ.get(ENV_USERNAME)
    password = _TAKEN.get(ENV_PASSWORD) or os.environ.get(ENV_PASSWORD)
    if username and password:
        return {"username": username, "password": password}
    return None


def _is_auth_error(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in AUTH_WORDS)


def push_one(
    client: Any,
    repository: str,
    tag: str,
    *,
    auth: dict[str, str] | None,
    say: Callable[[str], None],
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
) -> Pushed:
    """Push one tag; transient failures are retried `attempts` times with backoff, an
    authentication failure is not retried."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError

    registry = registry_of(repository)
    reference = f"{repository}:{tag}"
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            digest = ""
            stream = client.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth
            )
            for chunk in stream:
                if "error" in chunk:
                    raise _StreamError(str(chunk["error"]))
                digest = str((chunk.get("aux") or {}).get("Digest") or digest)
            if not digest:
                raise _StreamError("the registry returned no digest")
            return Pushed(reference, digest)
        except _StreamError as exc:
            last = str(exc)
        except (DockerException, RequestException, HTTPError, OSError) as exc:
            # A registry that dies mid-push keeps the engine retrying its layers in
            # silence: the client's read time-out ends the attempt (urllib3 raises it
            # unwrapped from a streamed response).
            last = str(getattr(exc, "explanation", None) or exc) or type(exc).__name__
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
    client: Any,
    repository: str,
    tags: list[str],
    moving: set[str],
    *,
    say: Callable[[str], None],
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
                client, repository, tag, auth=auth, say=say, attempts=attempts, backoff=backoff
            )
        )
    return pushed


def login(registry: str, username: str, password: str) -> None:
    """Check and store credentials with `docker login --password-stdin`: the password goes
    through a pipe, never an argv; where it is stored is the Docker config's choice (a
    credential helper when one is configured)."""
    import subprocess

    from .errors import CommandFailedError

    done = subprocess.run(
        ["docker", "login", registry, "--username", username, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())
        raise CommandFailedError(
            ["docker", "login", registry], done.returncode, [message[:300]], "docker login"
        )


class _StreamError(Exception):
    pass


def _short(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= 300 else text[:297] + "..."
