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
    from docker.errors import ImageNotFound

    for reference in references:
        try:
            client.images.remove(reference, force=True)
        except ImageNotFound:
            pass
