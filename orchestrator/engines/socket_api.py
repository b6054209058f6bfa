"""The few Docker Engine API reads a no-op build needs (ping, version, image inspect and
listing, container listing, tag), over the engine's unix socket with the standard library
only: the SDK, requests and urllib3 cost ~0.3 s to import, longer than such a build.

The methods are named and answer as the SDK's `APIClient` ones do (the same JSON), except
that an image that is not there is None. A refusal is EngineError with the engine's own
message; a socket that is missing or refuses is the OSError connecting raised.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import quote, urlencode

from .interface import EngineError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _message(status: int, body: bytes) -> str:
    """The engine's reason: the `message` of its JSON answer, else the answer itself."""
    try:
        found = json.loads(body).get("message")
    except (ValueError, AttributeError):
        found = None
    return str(found or body.decode(errors="replace").strip() or f"HTTP {status}")


class SocketAPI:
    """The engine at a unix socket; one keep-alive connection per thread."""

    def __init__(self, path: str, timeout: float = 60) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> _UnixConnection:
        connection: _UnixConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _UnixConnection(self.path, self.timeout)
        return connection

    def _exchange(self, method: str, url: str) -> tuple[int, bytes]:
        """One request and its answer. A kept connection the engine has closed meanwhile
        is opened again, once; a new one that fails raises."""
        connection = self._connection()
        reused = connection.sock is not None
        try:
            connection.request(method, url, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except ConnectionError:
            connection.close()
            if not reused:
                raise
        except BaseException:
            connection.close()  # an answer half read would be the next request's
            raise
        return self._exchange(method, url)

    def _call(
        self, method: str, path: str, params: dict[str, Any] | None = None, absent: bool = False
    ) -> Any:
        """The decoded answer (JSON, else the bytes); None for a 404 when `absent` says
        that not being there is an answer."""
        url = quote(path, safe="/:@") + (f"?{urlencode(params)}" if params else "")
        status, body = self._exchange(method, url)
        if status == 404 and absent:
            return None
        if not 200 <= status < 300:
            raise EngineError(_message(status, body))
        return json.loads(body) if body.lstrip()[:1] in (b"{", b"[") else body

    def ping(self) -> bool:
        return bool(self._call("GET", "/_ping") == b"OK")

    def version(self) -> dict[str, Any]:
        return dict(self._call("GET", "/version"))

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        found = self._call("GET", f"/images/{image}/json", absent=True)
        return dict(found) if found is not None else None

    def images(self, name: str | None = None) -> list[dict[str, Any]]:
        filters = {"filters": json.dumps({"reference": [name]})} if name else None
        return list(self._call("GET", "/images/json", filters))

    def containers(self, all: bool = False, filters: dict[str, str] | None = None) -> list[Any]:
        params: dict[str, Any] = {"all": int(all)}
        if filters:
            params["filters"] = json.dumps({k: [v] for k, v in filters.items()})
        return list(self._call("GET", "/containers/json", params))

    def tag(self, image: str, repository: str, tag: str | None = None) -> bool:
        params = {"repo": repository} | ({"tag": tag} if tag else {})
        self._call("POST", f"/images/{image}/tag", params)
        return True
