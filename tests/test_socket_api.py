"""The light engine client (engines/socket_api.py) against a fake engine: an `http.server`
on a unix socket in a temporary directory, answering a few API paths as dockerd does."""

from __future__ import annotations

import datetime as dt
import json
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.engines.address import unreachable_message
from orchestrator.engines.docker import DockerEngine
from orchestrator.engines.interface import ContainerInfo, EngineError, ImageInfo
from orchestrator.engines.socket_api import SocketAPI
from orchestrator.errors import ToolMissingError

IMAGE = {
    "Id": "sha256:" + "a" * 64,
    "RepoTags": ["web:1", "<none>:<none>"],
    "Size": 123,
    "Created": "2024-05-06T07:08:09.123456789Z",
    "Config": {"Entrypoint": ["/init"], "Cmd": None, "User": "app", "Labels": {"k": "v"}},
}
CONTAINERS = [
    {"Id": "c1", "Names": ["/rolecast-web-1"]},
    {"Id": "c2", "Names": ["/other/alias", "/x-rolecast-web"]},  # the filter matched inside
]


class FakeEngine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as dockerd
    seen: list[tuple[str, str, dict[str, list[str]]]]
    connections: list[int]  # one entry per connection accepted
    hang_up_after = ""  # a path whose answer ends the connection, unannounced

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.connection.fileno())

    def answer(self, status: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()  # sends them: with no body, the client may have gone already
        if data:
            self.wfile.write(data)
        if urlsplit(self.path).path == self.hang_up_after:
            self.close_connection = True

    def route(self) -> None:
        parts = urlsplit(self.path)
        self.seen.append((self.command, parts.path, parse_qs(parts.query)))
        routes: dict[str, tuple[int, Any]] = {
            "/_ping": (200, b"OK"),
            "/version": (200, {"Version": "99.1"}),
            "/images/web:1/json": (200, IMAGE),
            "/images/absent:1/json": (404, {"message": "No such image: absent:1"}),
            "/images/broken:1/json": (500, {"message": "the disk is on fire"}),
            "/images/json": (200, [IMAGE | {"Created": 1715000000, "Labels": {"k": "v"}}]),
            "/containers/json": (200, CONTAINERS),
            "/images/web:1/tag": (201, b""),
            "/images/absent:1/tag": (404, {"message": "No such image: absent:1"}),
        }
        self.answer(*routes.get(parts.path, (500, b"no route")))

    do_GET = do_POST = route

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeEngine]]:
    """The fake engine, serving until the test ends; DOCKER_HOST names its socket."""
    handler = type("Engine", (FakeEngine,), {"seen": [], "connections": []})
    with tempfile.TemporaryDirectory(prefix="rc") as directory:  # a socket path is short
        path = f"{directory}/docker.sock"
        with socketserver.ThreadingUnixStreamServer(path, handler) as server:
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
            yield handler
            server.shutdown()


def test_answers_are_the_engine_s_json(engine: type[FakeEngine]) -> None:
    api = SocketAPI(urlsplit(DockerEngine().address).path)
    assert api.ping() is True
    assert api.version() == {"Version": "99.1"}
    assert api.inspect_image("web:1") == IMAGE
    assert api.containers(all=True, filters={"name": "rolecast-"}) == CONTAINERS
    assert engine.seen[-1][2] == {"all": ["1"], "filters": ['{"name": ["rolecast-"]}']}
    assert api.tag("web:1", "registry:5000/web", "2") is True
    tagged = {"repo": ["registry:5000/web"], "tag": ["2"]}
    assert engine.seen[-1] == ("POST", "/images/web:1/tag", tagged)
    assert len(engine.connections) == 1  # one kept connection for all of them


def test_the_engine_maps_answers_as_the_sdk_does(engine: type[FakeEngine]) -> None:
    docker = DockerEngine.connect()
    assert docker.version() == "99.1"
    assert docker.image("web:1") == ImageInfo(
        id=str(IMAGE["Id"]),
        tags=["web:1"],
        size=123,
        created=dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
        entrypoint=["/init"],
        cmd=None,
        user="app",
        labels={"k": "v"},
    )
    [listed] = docker.images("web")
    assert (listed.id, listed.tags, listed.labels) == (IMAGE["Id"], ["web:1"], {"k": "v"})
    assert listed.created.timestamp() == 1715000000
    assert engine.seen[-1][2] == {"filters": ['{"reference": ["web"]}']}
    assert docker.containers(name_prefix="rolecast-") == [ContainerInfo("c1", "rolecast-web-1")]


def test_an_image_not_there_is_none_and_a_refusal_names_the_engine_s_reason(
    engine: type[FakeEngine],
) -> None:
    docker = DockerEngine.connect()
    assert docker.image("absent:1") is None
    with pytest.raises(EngineError) as refused:
        docker.image("broken:1")
    assert str(refused.value) == "image broken:1: the disk is on fire"
    with pytest.raises(EngineError) as untagged:  # tagging an image not there is an error
        docker.tag("absent:1", "web:2")
    assert str(untagged.value) == "tag web:2: No such image: absent:1"


def test_a_connection_the_engine_closed_is_opened_again(engine: type[FakeEngine]) -> None:
    engine.hang_up_after = "/version"
    api = SocketAPI(urlsplit(DockerEngine().address).path)
    assert api.version() == {"Version": "99.1"}  # the engine hangs up after answering
    assert api.inspect_image("web:1") == IMAGE
    assert api.inspect_image("web:1") == IMAGE
    assert len(engine.connections) == 2
    assert [path for _, path, _ in engine.seen].count("/images/web:1/json") == 2


def test_each_thread_has_a_connection_of_its_own(engine: type[FakeEngine]) -> None:
    api = SocketAPI(urlsplit(DockerEngine().address).path)
    api.ping()
    other = threading.Thread(target=api.ping)
    other.start()
    other.join()
    api.ping()
    assert len(engine.connections) == 2


@pytest.mark.parametrize("listening", [False, True], ids=["no socket", "nobody listening"])
def test_an_engine_that_is_not_there_reads_as_today(
    monkeypatch: pytest.MonkeyPatch, listening: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="rc") as directory:
        path = Path(directory) / "docker.sock"
        bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if listening:
            bound.bind(str(path))  # bound, never listening: connecting is refused
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        with pytest.raises(ToolMissingError) as missing:
            DockerEngine.connect(timeout=5)
        bound.close()
    reason = "Connection refused" if listening else "No such file or directory"
    assert str(missing.value) == unreachable_message(f"unix://{path}", reason, given=True)
    assert DockerEngine(timeout=5).ping() is False
