"""Podman, through its Docker-compatible API service (`podman system service`): the same
requests as Docker's (the Docker SDK and the light client serve it unchanged), so this is
the Docker engine where Podman answers differently.

Programs outside Rolecast's process (Packer's docker builder, Ansible's docker connection,
the stage commits) run a `docker` command: for Podman, that command is a shim Rolecast
writes, which runs `podman --remote` on the engine's socket, and `cp` and `commit` through
podman_cli.py, where Podman's CLI answers otherwise than Docker's.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import shlex
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from ..errors import ToolMissingError
from . import podman_cli
from .address import given_address, unix_socket
from .docker import DockerEngine, _failures, _reason
from .interface import Auth, EngineError, ImageInfo
from .podman_cli import podman_argv

ENGINE_KINDS = ("docker", "podman")
ENGINE_VARIABLE = "ROLECAST_ENGINE"
# Podman's own rootful socket, where `--engine podman` looks when no -H / DOCKER_HOST is given.
PODMAN_ADDRESS = "unix:///run/podman/podman.sock"
LOCAL_PREFIX = "localhost/"
# Docker Hub's names in auth files: Podman's `docker.io`, Docker's `index.docker.io/v1/`.
HUB_ALIASES = {"index.docker.io": "docker.io", "registry-1.docker.io": "docker.io"}
OWN_SOCKET_ADVICE = (
    "start it: `systemctl start podman.socket`, or `podman system service --time=0 "
    f"{PODMAN_ADDRESS} &`; or give another Podman socket with -H unix:///PATH (README, Podman)"
)
PODMAN_ADVICE = (
    "start it: podman system service --time=0 unix:///PATH (README, Podman; "
    "ROLECAST_ENGINE=podman scripts/setup.sh starts one), and give -H unix:///PATH"
)


def is_podman(version: dict[str, Any]) -> bool:
    """Whether a /version answer is Podman's: its components name the Podman Engine."""
    components = version.get("Components") or []
    return any("podman" in str(c.get("Name", "")).lower() for c in components)


def chosen_kind() -> str | None:
    """The engine kind --engine or ROLECAST_ENGINE names, or None: the engine's own answer
    decides."""
    kind = os.environ.get(ENGINE_VARIABLE, "").strip().lower()
    return kind or None


def shim_script(address: str, python: str = sys.executable) -> str:
    """A `docker` command for Packer and Ansible that runs Podman at `address`: `cp` and
    `commit` through podman_cli.py, which makes them answer as Docker's; the rest as is."""
    podman = shlex.join(podman_argv(address))
    translate = shlex.join([python, "-I", str(Path(podman_cli.__file__).resolve()), address])
    return f"""#!/bin/sh
# Written by Rolecast: the docker command of Packer's docker builder, on Podman.
case "$1" in
  cp | commit) exec {translate} "$@" ;;
esac
exec {podman} "$@"
"""


def shim_directory(address: str, cache: Path | None = None) -> Path:
    """The directory holding the `docker` shim for `address`, written when missing or
    different (one per address: two runs on two engines do not share one)."""
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(address.encode()).hexdigest()[:16]
    directory = root / "rolecast" / "podman-shim" / key
    script = shim_script(address)
    shim = directory / "docker"
    if not shim.is_file() or shim.read_text(encoding="utf-8") != script:
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".docker.{os.getpid()}"
        partial.write_text(script, encoding="utf-8")
        partial.chmod(0o755)
        partial.replace(shim)  # atomic: a Packer running now sees the old one or the new
    return directory


def short_name(tag: str) -> str:
    """A tag as Rolecast wrote it, as Docker shows it: Podman keeps a name without a
    registry under `localhost/` (`rolecast-cache/ID/web:FP` is listed as
    `localhost/rolecast-cache/...`) and Docker Hub's under `docker.io/` (`library/`)."""
    for prefix in (LOCAL_PREFIX, "docker.io/library/", "docker.io/"):
        if tag.startswith(prefix):
            return tag[len(prefix) :]
    return tag


def local_name(name: str) -> str:
    """The name Podman's own commands give a name without a registry (`podman tag`,
    `podman commit`, as Packer's and the stage commits run them): under `localhost/`.
    Its Docker-compatible API would put it under `docker.io/`: one short name, two images."""
    if registry_of(name) != "docker.io" or name.startswith("docker.io/"):
        return name
    return LOCAL_PREFIX + name


def _short_names(info: ImageInfo) -> ImageInfo:
    return replace(info, tags=[short_name(t) for t in info.tags])


def auth_files() -> list[Path]:
    """Where Podman's client keeps registry credentials, in the order it reads them
    (containers-auth.json(5)): REGISTRY_AUTH_FILE alone when set; else the runtime
    directory's (`/run/containers/UID/auth.json` without XDG_RUNTIME_DIR), then the
    configuration directory's. Docker's config comes after them."""
    given = os.environ.get("REGISTRY_AUTH_FILE")
    if given:
        return [Path(given)]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/containers/{os.getuid()}"
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(runtime) / "containers" / "auth.json", Path(config) / "containers" / "auth.json"]


def stored_login(path: Path, registry: str) -> Auth:
    """The username and password an auth.json holds for a registry, or None."""
    try:
        auths = json.loads(path.read_text(encoding="utf-8")).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    wanted = HUB_ALIASES.get(registry, registry)
    for key, entry in auths.items():
        host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if HUB_ALIASES.get(host, host) != wanted or not isinstance(entry, dict):
            continue
        if not entry.get("auth"):
            continue
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            continue
        if password:
            return {"username": username, "password": password}
    return None


def registry_of(reference: str) -> str:
    """The registry a reference names (docker.io when it names none)."""
    first, slash, _ = reference.partition("/")
    named = slash and ("." in first or ":" in first or first == "localhost")
    return first if named else "docker.io"


class PodmanEngine(DockerEngine):
    """A Podman API service: DOCKER_HOST (a unix socket), or Podman's own socket."""

    kind = "podman"

    @classmethod
    def connect(cls, timeout: int = 60) -> Self:
        try:
            engine = super().connect(timeout)
        except ToolMissingError as exc:
            said, _, _ = str(exc).partition("\n")
            said = said.replace("no Docker engine answers", "no Podman API service answers", 1)
            if given_address() == PODMAN_ADDRESS:  # `--engine podman` (or the spec's) alone
                said = said.replace(" (-H or DOCKER_HOST)", " (Podman's own socket)", 1)
                advice = OWN_SOCKET_ADVICE
            else:
                advice = PODMAN_ADVICE
            raise ToolMissingError(f"{said}\n{advice}") from None
        return engine

    def image(self, reference: str) -> ImageInfo | None:
        found = super().image(reference)
        return _short_names(found) if found is not None else None

    def tag(self, source: str, target: str) -> None:
        super().tag(source, local_name(target))

    def images(self, repository: str | None = None) -> list[ImageInfo]:
        return [_short_names(i) for i in super().images(repository)]

    def registry_insecure(self, registry: str) -> bool:
        """Podman lists no insecure registries of its own (they are in registries.conf):
        as Docker by default, a registry on this machine (127.0.0.0/8, ::1) is plain HTTP."""
        if super().registry_insecure(registry):
            return True
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except (OSError, ValueError):
            return False

    def _plain_http(self, reference: str) -> bool:
        registry = registry_of(reference)
        return registry != "docker.io" and self.registry_insecure(registry)

    def _login_flags(self, registry: str) -> list[str]:
        """`podman login` (the engine's cli()) stores the credentials in Podman's auth file
        (REGISTRY_AUTH_FILE, or Podman's default), where registry_auth and `podman push`
        find them; it speaks HTTPS unless told."""
        return ["--tls-verify=false"] if self.registry_insecure(registry) else []

    def registry_auth(self, registry: str) -> Auth:
        """Podman's auth files first (`podman login`, `rolecast login` on Podman), then
        Docker's config, as Podman's client reads them."""
        for path in auth_files():
            found = stored_login(path, registry)
            if found is not None:
                return found
        return super().registry_auth(registry)

    def _push_stream(self, repository: str, tag: str, auth: Auth) -> Any:
        # The SDK would send Docker's config only: the credentials Podman's client has.
        auth = auth or self.registry_auth(registry_of(repository))
        if self._plain_http(repository):
            return self._push_stream_plain_http(repository, tag, auth)
        return super()._push_stream(repository, tag, auth)

    def pull(self, reference: str, auth: Auth = None) -> None:
        """From a plain-HTTP registry through Podman's own API: its Docker-compatible pull
        takes no `tlsVerify` (Podman 4.3)."""
        auth = auth or self.registry_auth(registry_of(reference))
        if not self._plain_http(reference):
            super().pull(reference, auth)
            return
        api = self.client.api
        header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode() if auth else None
        try:
            response = api.post(
                f"{api.base_url}/v4.0.0/libpod/images/pull",
                params={"reference": reference, "tlsVerify": "false", "quiet": "true"},
                headers={"X-Registry-Auth": header} if header else {},
            )
        except _failures() as exc:
            raise EngineError(_reason(exc)) from None
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        failed = [str(line["error"]) for line in lines if line.get("error")]
        if failed or response.status_code != 200:
            raise EngineError(failed[-1] if failed else f"pull of {reference}: {response.text}")

    def registry_has(self, reference: str, auth: Auth = None) -> bool | None:
        """Podman 4.3 does not serve the registry lookup (`GET /distribution/REF/json`
        answers "not supported"), and its own manifest inspect takes no `tlsVerify`: the
        caller asks the registry."""
        return None

    def packer_path(self) -> list[str]:
        return [str(shim_directory(self.address))]

    def cli(self) -> list[str]:
        return podman_argv(self.address)


def use_kind(kind: str, address_given: bool) -> None:
    """Build on this kind of engine (--engine, the spec's `engine:`): connect() reads it;
    Podman without an address given is Podman's own socket."""
    os.environ[ENGINE_VARIABLE] = kind
    if kind == "podman" and not address_given:
        os.environ["DOCKER_HOST"] = PODMAN_ADDRESS


def answers_as_podman(engine: DockerEngine) -> bool:
    """Whether the engine DOCKER_HOST names is Podman's API service: asked only of a unix
    socket given in DOCKER_HOST (one request on the light client); the local Docker socket
    and remote engines are taken for Docker unless --engine says otherwise."""
    address = given_address()
    if address is None or unix_socket(address) is None:
        return False
    try:
        return is_podman(dict(engine.api.version()))
    except _failures():
        return False
