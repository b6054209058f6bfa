"""Running the real `rolecast` command and talking to what it built."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..conftest import DATA

ROLECAST = str(Path(sys.executable).parent / "rolecast")
EDGE = DATA / "projects" / "edge"


def rolecast(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> Any:
    """Run the installed `rolecast` command; returns the CompletedProcess."""
    env = dict(os.environ) | (env or {})
    env.pop("COLUMNS", None)
    return subprocess.run(
        [ROLECAST, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def copy_project(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".rolecast"))
    return dest


def build_json(*args: str, cwd: Path | None = None) -> tuple[Any, dict[str, Any]]:
    done = rolecast("build", "--json", *args, cwd=cwd)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        data = {}
    return done, data


def http_get(url: str, attempts: int = 100) -> str:
    """GET with retries while the service in a fresh container starts listening."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except (OSError, ConnectionError) as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer: {last}")


def published_port(container: Any, port: str) -> int:
    container.reload()
    return int(container.ports[port][0]["HostPort"])


def serve(client: Any, image: str, port: str, path: str = "/") -> str:
    """Run the image's own command, publish `port` on 127.0.0.1, and GET `path` from it."""
    container = client.containers.run(image, detach=True, ports={port: ("127.0.0.1", None)})
    try:
        return http_get(f"http://127.0.0.1:{published_port(container, port)}{path}")
    finally:
        container.remove(force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_in(client: Any, image: str, *command: str, user: str | None = None) -> str:
    """The output of `command` in a throw-away container of `image` (no network)."""
    output = client.containers.run(
        image, list(command), remove=True, network_disabled=True, entrypoint="", user=user
    )
    return str(output.decode())


def vault_encrypt(path: Path, password_file: Path) -> None:
    """Encrypt `path` in place with ansible-vault, as a user does."""
    done = subprocess.run(
        [
            str(Path(ROLECAST).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password_file),
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def remove_images(client: Any, *references: str) -> None:
    from docker.errors import NotFound  # Podman's "image not known" is no ImageNotFound

    for reference in references:
        try:
            client.images.remove(reference, force=True)
        except NotFound:
            pass


def tag_image(client: Any, source: str, target: str) -> None:
    """`docker tag SOURCE TARGET`: the repository and the tag given apart, as Podman's
    compatible API takes them (it refuses `repo=NAME:TAG`)."""
    repository, _, tag = target.rpartition(":")
    client.images.get(source).tag(repository, tag)


def tag_names(image: Any) -> set[str]:
    """An image's tags as Docker shows them: Podman lists `localhost/NAME` for a name
    without a registry, `docker.io/NAME` for Docker Hub's."""
    from orchestrator.engines.podman import short_name

    return {short_name(tag) for tag in image.tags}


def engine_kind() -> str:
    """`docker` or `podman`: the engine the tests build on (ROLECAST_ENGINE, DOCKER_HOST)."""
    from orchestrator.engines import connect
    from orchestrator.engines.podman import PodmanEngine

    return "podman" if isinstance(connect(), PodmanEngine) else "docker"


def signal_name(value: str) -> str:
    """A stop signal as Docker stores it (`SIGQUIT`); Podman stores the number (`3`)."""
    import signal

    return signal.Signals(int(value)).name if value.isdigit() else value
