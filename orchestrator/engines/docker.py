"""The Docker engine, through the Docker SDK for Python; the docker CLI where a program
outside Rolecast's process needs it (login, import, the guard's clean-up). On a unix socket
the reads of a no-op build (ping, version, images, containers, tag) go through the light
client of socket_api.py instead, and the SDK is imported on the first call that needs it.

The only module that imports the SDK: its exceptions end here, as EngineError with the
engine's own reason, or as "absent" (None, False) where absence is an answer.
"""

from __future__ import annotations

import datetime as dt
import http.client
import importlib.util
import io
import ipaddress
import logging
import re
import socket
import subprocess
import sys
import tarfile
import threading
import types
from pathlib import Path
from typing import Any, Self

SSH_TRANSPORT = "docker.transport.sshconn"


def _ssh_transport_when_used() -> None:
    """The SDK imports its ssh transport, and with it paramiko (~100 ms a start), whatever
    the engine's address; only ssh:// engines use it. Until one does, a stand-in module
    holds its place: the first ssh:// client (or any use of the module) imports the real
    transport, puts it where the SDK keeps it, and from then on every importer gets it.
    paramiko itself is left alone: it is imported, whole, by the real transport."""
    if SSH_TRANSPORT in sys.modules or importlib.util.find_spec("paramiko") is None:
        return  # without paramiko the SDK says "Install paramiko" for an ssh:// address
    stand_in = types.ModuleType(SSH_TRANSPORT, "The SDK's ssh transport, until used.")

    def real() -> types.ModuleType:
        if sys.modules.get(SSH_TRANSPORT) is stand_in:
            del sys.modules[SSH_TRANSPORT]
        module = importlib.import_module(SSH_TRANSPORT)
        holders: list[Any] = [sys.modules.get(n) for n in ("docker.transport", "docker.api.client")]
        for holder in filter(None, holders):
            holder.SSHHTTPAdapter = module.SSHHTTPAdapter
        if holders[0] is not None:
            holders[0].sshconn = module
        return module

    def adapter(*args: Any, **kwargs: Any) -> Any:
        try:
            module = real()
        except ImportError as exc:  # the SDK turns NameError into "Install paramiko"
            raise NameError(str(exc)) from exc
        return module.SSHHTTPAdapter(*args, **kwargs)

    def attribute(name: str) -> Any:
        if name.startswith("__"):  # the import system asks (`__path__`): not a use
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.SSHHTTPAdapter = adapter  # type: ignore[attr-defined]
    stand_in.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules[SSH_TRANSPORT] = stand_in


_ssh_transport_when_used()

from ..errors import CommandFailedError, ToolMissingError  # noqa: E402
from ..runner import run  # noqa: E402
from .address import (  # noqa: E402
    current_address,
    given_address,
    shorten,
    unix_socket,
    unreachable_message,
)
from .interface import (  # noqa: E402
    Auth,
    ContainerInfo,
    EngineError,
    EventStream,
    ImageInfo,
    VolumeInfo,
)
from .socket_api import SocketAPI  # noqa: E402


def _sdk_client(timeout: int) -> Any:
    """The SDK's client of DOCKER_HOST (and Docker's TLS variables): the SDK, requests and
    urllib3 are imported here, on the first call that needs them."""
    import docker

    return docker.from_env(timeout=timeout)


def _failures() -> tuple[type[BaseException], ...]:
    """What an engine call may raise: the light client's refusals and socket errors, and
    the SDK's (requests', urllib3's) once it is loaded: until then it cannot have raised.
    ssh:// engines go through paramiko (the SDK's ssh extra), whose errors are not the
    SDK's; until paramiko has loaded, none can be raised."""
    found: list[type[BaseException]] = [EngineError, OSError, http.client.HTTPException]
    if "docker.errors" in sys.modules:
        from docker.errors import DockerException
        from requests.exceptions import RequestException
        from urllib3.exceptions import HTTPError

        found += [DockerException, RequestException, HTTPError]
    ssh = sys.modules.get("paramiko.ssh_exception")
    return (*found, ssh.SSHException) if ssh is not None else tuple(found)


def _absent(exc: BaseException) -> bool:
    """The SDK's 404 (NotFound, ImageNotFound), known without importing the SDK."""
    return getattr(exc, "status_code", None) == 404


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return shorten(text.splitlines()[0]) if text.strip() else type(exc).__name__


def _first_cause(exc: BaseException) -> BaseException:
    """The failure under the wrappers: the SDK's DockerException, requests' ConnectionError,
    urllib3's MaxRetryError and ProtocolError, paramiko's NoValidConnectionsError."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = [a for a in exc.args if isinstance(a, BaseException)]
        inner += list((getattr(exc, "errors", None) or {}).values())
        if isinstance(getattr(exc, "reason", None), BaseException):
            inner.append(exc.reason)  # type: ignore[attr-defined]
        below = exc.__cause__ or (inner[-1] if inner else None)
        if below is None:
            break
        exc = below
    return exc


def _connect_reason(exc: BaseException) -> str:
    cause = _first_cause(exc)
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _created(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text[:26].rstrip("Z")).replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)


def _info(attrs: dict[str, Any]) -> ImageInfo:
    """An image inspected (GET /images/{ref}/json), as the SDK's Image model reads it."""
    config = attrs.get("Config") or {}
    return ImageInfo(
        id=str(attrs.get("Id")),
        tags=_tags(attrs),
        size=int(attrs.get("Size") or 0),
        created=_created(str(attrs.get("Created") or "")),
        entrypoint=config.get("Entrypoint") or None,
        cmd=config.get("Cmd") or None,
        user=config.get("User") or "",
        labels=dict(config.get("Labels") or {}),
    )


def _tags(attrs: dict[str, Any]) -> list[str]:
    return [t for t in attrs.get("RepoTags") or [] if t != "<none>:<none>"]


def _name(summary: dict[str, Any]) -> str:
    """A listed container's own name: its other names are links' (/OTHER/ALIAS)."""
    names = [str(n).lstrip("/") for n in summary.get("Names") or []]
    return next((n for n in names if "/" not in n), names[0] if names else "")


class _StreamError(Exception):
    pass


_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


def _status_digest(chunk: dict[str, Any]) -> str | None:
    """The digest a push's last status line names (`TAG: digest: sha256:... size: N`):
    Podman sends no `aux` with it."""
    found = _DIGEST.search(str(chunk.get("status") or ""))
    return found.group(1) if found else None


class DockerContainer:
    def __init__(self, container: Any) -> None:
        self._container = container

    @property
    def id(self) -> str:
        return str(self._container.id)

    def exec(self, argv: list[str], user: str = "0") -> tuple[int, bytes]:
        try:
            code, output = self._container.exec_run(argv, user=user)
        except _failures() as exc:
            raise EngineError(f"exec in container {self.id[:12]}: {_reason(exc)}") from None
        return int(code), bytes(output or b"")

    def put(self, directory: str, files: dict[str, bytes]) -> None:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
        self.exec(["mkdir", "-p", directory])
        try:
            self._container.put_archive(directory, archive.getvalue())
        except _failures() as exc:
            raise EngineError(f"copy into container {self.id[:12]}: {_reason(exc)}") from None

    def remove(self) -> None:
        try:
            self._container.remove(force=True)
        except _failures() as exc:
            if _absent(exc):
                return
            raise EngineError(f"remove container {self.id[:12]}: {_reason(exc)}") from None


class DockerEngine:
    """A Docker engine: DOCKER_HOST (unix, tcp with Docker's TLS variables, ssh) or the
    local socket."""

    kind = "docker"

    def __init__(self, timeout: int = 60, *, light: bool = True) -> None:
        """`light`: the reads on a unix socket go through the light client (False: the
        SDK's, as on other engines)."""
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()
        path = unix_socket(current_address()) if light else None
        self._light = SocketAPI(path, timeout) if path else None

    @property
    def client(self) -> Any:
        """The SDK's client, made on first use: a no-op build on a unix socket needs none."""
        with self._lock:
            if self._client is None:
                self._client = _sdk_client(self.timeout)
            return self._client

    @property
    def api(self) -> Any:
        """Where the reads go: the light client on a unix socket, else the SDK's APIClient
        (the same methods, the same JSON)."""
        return self._light or self.client.api

    @classmethod
    def connect(cls, timeout: int = 60) -> Self:
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            # paramiko logs a traceback of its own for each failed ssh connection: the
            # message below says it in one line (-v shows them).
            logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
        engine = cls(timeout)
        try:
            engine.api.ping()
        except _failures() + (ValueError,) as exc:  # ValueError: DOCKER_HOST's port is no number
            message = unreachable_message(
                current_address(), _connect_reason(exc), given=given_address() is not None
            )
            raise ToolMissingError(message) from None
        return engine

    @property
    def address(self) -> str:
        return current_address()

    def ping(self) -> bool:
        try:
            return bool(self.api.ping())
        except _failures():
            return False

    def version(self) -> str | None:
        try:
            return str(self.api.version().get("Version"))
        except _failures():
            return None

    # -- images --------------------------------------------------------------------------
    def image(self, reference: str) -> ImageInfo | None:
        try:
            found = self.api.inspect_image(reference)
        except _failures() as exc:
            if _absent(exc):
                return None
            raise EngineError(f"image {reference}: {_reason(exc)}") from None
        return _info(found) if found is not None else None

    def images(self, repository: str | None = None) -> list[ImageInfo]:
        # One request for the summaries: the SDK's images.list() inspects each image after
        # it, a request per image, which over ssh costs a login channel each.
        try:
            found = self.api.images(name=repository)
        except _failures() as exc:
            raise EngineError(f"listing images: {_reason(exc)}") from None
        return [
            ImageInfo(
                id=str(entry["Id"]),
                tags=_tags(entry),
                size=int(entry.get("Size") or 0),
                created=dt.datetime.fromtimestamp(int(entry.get("Created") or 0), dt.UTC),
                labels=dict(entry.get("Labels") or {}),
            )
            for entry in found
        ]

    def tag(self, source: str, target: str) -> None:
        repository, tag = target.rsplit(":", 1)
        try:  # one request: the SDK's images.get(source).tag() inspects the image first
            self.api.tag(source, repository, tag)
        except _failures() as exc:
            raise EngineError(f"tag {target}: {_reason(exc)}") from None

    def remove_image(self, reference: str) -> bool:
        try:
            self.client.images.remove(reference, force=False, noprune=False)
        except _failures():
            return False
        return True

    def import_rootfs(
        self, rootfs: Path, reference: str, changes: list[str], *, timeout: float, log: Path | None
    ) -> None:
        argv = [*self.cli(), "import"]
        for change in changes:
            argv += ["--change", change]
        with subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            run(
                [*argv, "-", reference],
                stdin=tar.stdout,
                timeout=timeout,
                log_file=log,
                what=f"{self.cli()[0]} import of {reference}",
            )

    # -- registries ------------------------------------------------------------------------
    def pull(self, reference: str, auth: Auth = None) -> None:
        try:
            self.client.images.pull(reference, auth_config=auth)
        except _failures() as exc:
            raise EngineError(_reason(exc)) from None

    def registry_has(self, reference: str, auth: Auth = None) -> bool | None:
        try:
            self.client.images.get_registry_data(reference, auth_config=auth)
        except _failures():
            return False  # not there, or the registry cannot say
        return True

    def push(self, repository: str, tag: str, auth: Auth = None) -> str:
        try:
            digest = ""
            for chunk in self._push_stream(repository, tag, auth):
                if "error" in chunk:
                    raise _StreamError(str(chunk["error"]))
                found = (chunk.get("aux") or {}).get("Digest") or _status_digest(chunk)
                digest = str(found or digest)
        except _StreamError as exc:
            raise EngineError(str(exc)) from None
        except _failures() as exc:
            # A registry that dies mid-push keeps the engine retrying its layers in
            # silence: the client's read time-out ends the attempt (urllib3 raises it
            # unwrapped from a streamed response).
            raise EngineError(_reason(exc)) from None
        if not digest:
            raise EngineError("the registry returned no digest")
        return digest

    def _push_stream(self, repository: str, tag: str, auth: Auth) -> Any:
        return self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)

    def _push_stream_plain_http(self, repository: str, tag: str, auth: Auth) -> Any:
        """A push with `tlsVerify=false`, which Podman's API takes for a registry that
        speaks plain HTTP (Docker decides that itself, from its insecure registries): the
        SDK's push() with that one parameter more."""
        import docker.auth

        api = self.client.api
        registry, _ = docker.auth.resolve_repository_name(repository)
        header = (
            docker.auth.encode_header(auth)
            if auth is not None
            else docker.auth.get_config_header(api, registry)
        )
        response = api._post_json(
            api._url("/images/{0}/push", repository),
            None,
            headers={"X-Registry-Auth": header} if header else {},
            stream=True,
            params={"tag": tag, "tlsVerify": "false"},
        )
        api._raise_for_status(response)
        return api._stream_helper(response, decode=True)

    def login(self, registry: str, username: str, password: str) -> None:
        """`docker login --password-stdin`: the password goes through a pipe, never an argv;
        where it is stored is the engine client's choice (for Docker, the Docker config or
        its credential helper)."""
        argv = [*self.cli(), "login", *self._login_flags(registry), registry]
        done = subprocess.run(
            [*argv, "--username", username, "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            message = " ".join((done.stderr or done.stdout).split())
            what = f"{Path(argv[0]).name} login"
            raise CommandFailedError(argv, done.returncode, [message[:300]], what)

    def _login_flags(self, registry: str) -> list[str]:
        return []  # the engine decides plain HTTP itself

    def registry_auth(self, registry: str) -> Auth:
        import docker

        try:
            found = docker.auth.load_config().resolve_authconfig(registry)
        except (docker.errors.DockerException, OSError, ValueError):
            return None
        if not found or not found.get("Password", found.get("password")):
            return None
        return {
            "username": str(found.get("Username", found.get("username", ""))),
            "password": str(found.get("Password", found.get("password", ""))),
        }

    def registry_insecure(self, registry: str) -> bool:
        try:
            config = self.client.info().get("RegistryConfig") or {}
        except _failures():
            return False
        index = (config.get("IndexConfigs") or {}).get(registry) or {}
        if index.get("Secure") is False:
            return True
        host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            return False
        return any(
            address in ipaddress.ip_network(cidr, strict=False)
            for cidr in config.get("InsecureRegistryCIDRs") or []
        )

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
    ) -> DockerContainer:
        options: dict[str, Any] = {"detach": True, "name": name, "labels": labels or {}}
        if entrypoint is not None:
            options["entrypoint"] = entrypoint
        if user is not None:
            options["user"] = user
        if interactive:
            options |= {"stdin_open": True, "tty": True}
        try:
            return DockerContainer(self.client.containers.run(image, command, **options))
        except _failures() as exc:
            raise EngineError(f"run a container of {image[:19]}: {_reason(exc)}") from None

    def containers(
        self, *, name_prefix: str | None = None, label: str | None = None
    ) -> list[ContainerInfo]:
        filters = {"name": name_prefix} if name_prefix else {}
        if label:
            filters["label"] = label
        try:  # the summaries: the SDK's containers.list() inspects each container after it
            found = self.api.containers(all=True, filters=filters)
        except _failures() as exc:
            raise EngineError(f"listing containers: {_reason(exc)}") from None
        named = [ContainerInfo(str(c["Id"]), _name(c)) for c in found]
        # the name filter matches anywhere in the name
        return [c for c in named if name_prefix is None or c.name.startswith(name_prefix)]

    def remove_container(self, name_or_id: str) -> None:
        try:
            self.client.containers.get(name_or_id).remove(force=True)
        except _failures() as exc:
            if _absent(exc):
                return
            raise EngineError(f"remove container {name_or_id}: {_reason(exc)}") from None

    def cli(self) -> list[str]:
        """The engine's command line program, for what runs outside this process (the
        import of a base's root filesystem, the guard's clean-up)."""
        return ["docker"]

    def removal_command(self, name: str) -> list[str]:
        return [*self.cli(), "rm", "-f", name]

    def packer_path(self) -> list[str]:
        return []

    # -- volumes and events ----------------------------------------------------------------
    def volume_exists(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
        except _failures():
            return False
        return True

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        if self.volume_exists(name):
            return
        try:
            self.client.volumes.create(name=name, labels=labels)
        except _failures() as exc:
            raise EngineError(f"create volume {name}: {_reason(exc)}") from None

    def volumes(self, label: str) -> list[VolumeInfo]:
        try:
            found = self.client.volumes.list(filters={"label": label})
        except _failures() as exc:
            raise EngineError(f"listing volumes: {_reason(exc)}") from None
        return [VolumeInfo(str(v.name), dict(v.attrs.get("Labels") or {})) for v in found]

    def remove_volume(self, name: str) -> bool:
        try:
            self.client.volumes.get(name).remove()
        except _failures():
            return False  # absent, or in use by a running build
        return True

    def events(self, filters: dict[str, Any]) -> EventStream:
        try:
            stream: EventStream = self.client.events(decode=True, filters=filters)
        except _failures() as exc:
            raise EngineError(f"events: {_reason(exc)}") from None
        return stream
