"""The registry API client against a tiny registry in this process (http.server in a
thread) that speaks the protocol: manifests, blobs, mounts (or refuses them), uploads, and
Basic or Bearer-token authentication."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    RETRIES,
    Manifest,
    Reference,
    Registry,
    RegistryError,
    registry_holds,
)

from .fakes import FakeEngine

USER, PASSWORD = "ci", "s3cret-pw-0451"
TOKEN = "tok-" + "a" * 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    auth: str = "none"  # none | basic | bearer
    refuse_mounts: bool = False
    unavailable: int = 0  # the next requests answered 503, as a registry restarting
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> digest -> data
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # upload id -> repo
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, auth
    scopes: list[list[str]] = field(default_factory=list)

    def add_image(self, repo: str, tag: str, labels: dict[str, str]) -> Manifest:
        config = json.dumps({"config": {"Labels": labels}}).encode()
        layer = b"layer of " + repo.encode()
        self.blobs.setdefault(repo, {}).update({sha(config): config, sha(layer): layer})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"digest": sha(config), "size": len(config)},
                "layers": [{"digest": sha(layer), "size": len(layer)}],
            }
        ).encode()
        self.manifests.setdefault(repo, {})[tag] = (DOCKER_MANIFEST, manifest)
        self.manifests[repo][sha(manifest)] = (DOCKER_MANIFEST, manifest)
        return Manifest(sha(manifest), DOCKER_MANIFEST, manifest)


def handler(store: Store, port: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, code: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(code)
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def allowed(self) -> bool:
            given = self.headers.get("Authorization", "")
            self.store_seen(given)
            if store.auth == "basic":
                good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if given != good:
                    self.reply(401, WWW_Authenticate='Basic realm="test"')
                    return False
            if store.auth == "bearer" and given != f"Bearer {TOKEN}":
                realm = f"http://127.0.0.1:{port[0]}/token"
                self.reply(401, WWW_Authenticate=f'Bearer realm="{realm}",service="test"')
                return False
            return True

        def store_seen(self, given: str) -> None:
            store.seen.append((self.command, self.path, given))

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            self.route()

        def do_HEAD(self) -> None:
            self.route()

        def do_PUT(self) -> None:
            self.route()

        def do_POST(self) -> None:
            self.route()

        def do_DELETE(self) -> None:
            self.route()

        def route(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/token":
                given = self.headers.get("Authorization", "")
                store.seen.append((self.command, self.path, given))
                good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if given != good:
                    return self.reply(401)
                store.scopes.append(query.get("scope", []))
                return self.reply(200, json.dumps({"token": TOKEN}).encode())
            if store.unavailable > 0:
                store.unavailable -= 1
                store.seen.append((self.command, self.path, "503"))
                return self.reply(503, b"restarting")
            if not self.allowed():
                return None
            match = re.fullmatch(r"/v2/(.+)/(manifests|blobs/uploads|blobs)/(.*)", parts.path)
            if match is None:
                return self.reply(404)
            repo, kind, ref = match.groups()
            getattr(self, kind.replace("/", "_"))(repo, ref, query)
            return None

        def manifests(self, repo: str, ref: str, query: dict[str, list[str]]) -> None:
            if self.command == "PUT":
                data = self.body()
                media = self.headers["Content-Type"]
                missing = [
                    d for d in Manifest(sha(data), media, data).blobs()
                    if d not in store.blobs.get(repo, {})
                ]  # fmt: skip
                if missing and media == DOCKER_MANIFEST:
                    return self.reply(400, b"blob unknown")
                store.manifests.setdefault(repo, {})[ref] = (media, data)
                store.manifests[repo][sha(data)] = (media, data)
                return self.reply(201, Docker_Content_Digest=sha(data))
            found = store.manifests.get(repo, {}).get(ref)
            if found is None:
                return self.reply(404)
            media, data = found
            return self.reply(200, data, Content_Type=media, Docker_Content_Digest=sha(data))

        def blobs(self, repo: str, ref: str, query: dict[str, list[str]]) -> None:
            data = store.blobs.get(repo, {}).get(ref)
            return self.reply(404) if data is None else self.reply(200, data)

        def blobs_uploads(self, repo: str, ref: str, query: dict[str, list[str]]) -> None:
            if self.command == "POST" and "mount" in query and not store.refuse_mounts:
                data = store.blobs.get(query["from"][0], {}).get(query["mount"][0])
                if data is not None:
                    store.blobs.setdefault(repo, {})[query["mount"][0]] = data
                    return self.reply(201)
            if self.command == "POST":
                upload = f"u{len(store.uploads)}"
                store.uploads[upload] = repo
                return self.reply(202, Location=f"/v2/{repo}/blobs/uploads/{upload}?state=x")
            if self.command == "DELETE":
                store.uploads.pop(ref, None)
                return self.reply(204)
            data = self.body()
            if sha(data) != query["digest"][0]:
                return self.reply(400, b"digest invalid")
            store.blobs.setdefault(store.uploads.pop(ref), {})[sha(data)] = data
            return self.reply(201)

    return Handler


@pytest.fixture
def served() -> Iterator[tuple[Store, str]]:
    store, port = Store(), [0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(store, port))
    port[0] = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield store, f"127.0.0.1:{port[0]}"
    server.shutdown()
    server.server_close()
    thread.join()


def client(host: str, login: tuple[str, str] | None = (USER, PASSWORD)) -> Registry:
    return Registry(host, secure=False, login=login)


@pytest.mark.parametrize("auth", ["none", "basic", "bearer"])
def test_copy_mounts_every_blob_and_puts_the_manifest_under_the_tag(
    served: tuple[Store, str], auth: str
) -> None:
    store, host = served
    store.auth = auth
    source = store.add_image("team/cache", "app-abc", {"io.rolecast.fingerprint": "abc"})
    registry = client(host)
    found = registry.manifest("team/cache", "app-abc")
    assert found is not None
    assert (found.digest, found.media_type) == (source.digest, DOCKER_MANIFEST)
    config = registry.config("team/cache", found)
    assert config["config"]["Labels"] == {"io.rolecast.fingerprint": "abc"}
    digest = registry.copy("team/cache", found, "team/app", "1.0")
    assert digest == source.digest
    assert store.manifests["team/app"]["1.0"][1] == source.data
    assert set(store.blobs["team/app"]) == set(source.blobs())
    mounts = {path for method, path, _ in store.seen if "mount=" in path}
    assert len(mounts) == 2
    assert not any(method == "PUT" and "/blobs/uploads/" in path for method, path, _ in store.seen)
    assert registry.manifest("team/app", "missing", head=True) is None
    if auth == "bearer":  # a mount asks for push on the target and pull on the source
        assert ["repository:team/app:pull,push", "repository:team/cache:pull"] in store.scopes
    assert all(PASSWORD not in path for _, path, _ in store.seen)


def test_a_refused_mount_falls_back_to_a_download_and_an_upload(
    served: tuple[Store, str],
) -> None:
    store, host = served
    store.refuse_mounts = True
    source = store.add_image("team/cache", "app-abc", {})
    registry = client(host, login=None)
    found = registry.manifest("team/cache", "app-abc")
    assert found is not None
    registry.copy("team/cache", found, "team/app", "latest")
    assert set(store.blobs["team/app"]) == set(source.blobs())
    assert store.uploads == {}  # the refused mounts' uploads were cancelled or finished
    assert store.manifests["team/app"]["latest"][1] == source.data


def test_an_index_is_copied_with_each_platform_manifest(served: tuple[Store, str]) -> None:
    store, host = served
    child = store.add_image("team/cache", "app-amd64", {})
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": child.digest}]}
    ).encode()
    store.manifests["team/cache"]["app-abc"] = (OCI_INDEX, index)
    registry = client(host, login=None)
    found = registry.manifest("team/cache", "app-abc")
    assert found is not None and found.is_index
    assert registry.copy("team/cache", found, "team/app", "1.0") == sha(index)
    assert child.digest in store.manifests["team/app"]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_wrong_credentials_fail_naming_the_registry_never_the_password(
    served: tuple[Store, str], auth: str
) -> None:
    store, host = served
    store.auth = auth
    store.add_image("team/cache", "app-abc", {})
    with pytest.raises(RegistryError) as failed:
        client(host, login=(USER, "wrong-" + PASSWORD)).manifest("team/cache", "app-abc")
    assert host in str(failed.value)
    assert "rolecast login" in str(failed.value)
    assert PASSWORD not in str(failed.value)


def test_scheme_and_credentials_follow_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLECAST_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("ROLECAST_REGISTRY_PASSWORD", raising=False)
    engine = FakeEngine(insecure_registries={"lab.test:5000"})
    engine.registry_logins["lab.test:5000"] = {"username": "u", "password": "p"}
    assert Registry.of(engine, "localhost:5000").base == "http://localhost:5000/v2/"
    assert Registry.of(engine, "127.0.0.1:5000").base == "http://127.0.0.1:5000/v2/"
    lab = Registry.of(engine, "lab.test:5000")
    assert (lab.base, lab.login) == ("http://lab.test:5000/v2/", ("u", "p"))
    secure = Registry.of(engine, "ghcr.io")
    assert (secure.base, secure.login) == ("https://ghcr.io/v2/", None)
    monkeypatch.setenv("ROLECAST_REGISTRY_USERNAME", "env-user")
    monkeypatch.setenv("ROLECAST_REGISTRY_PASSWORD", "env-pw")
    assert Registry.of(engine, "lab.test:5000").login == ("env-user", "env-pw")
    assert "env-pw" not in repr(Registry.of(engine, "lab.test:5000"))


def test_an_engine_that_cannot_ask_leaves_the_lookup_to_the_registry_client(
    served: tuple[Store, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Podman 4.3 serves no registry lookup: the shared stage cache asks the registry
    itself, with the credentials a pull uses; an engine that can ask is taken at its word."""
    monkeypatch.delenv("ROLECAST_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("ROLECAST_REGISTRY_PASSWORD", raising=False)
    store, host = served
    store.auth = "basic"
    store.add_image("team/cache", "web-abc", {})
    podman = FakeEngine(asks_registries=False)
    auth = {"username": USER, "password": PASSWORD}
    assert registry_holds(podman, f"{host}/team/cache:web-abc", auth)
    assert not registry_holds(podman, f"{host}/team/cache:web-def", auth)
    podman.registry_logins[host] = auth  # `rolecast login`: the engine's stored credentials
    assert registry_holds(podman, f"{host}/team/cache:web-abc")
    wrong = {"username": USER, "password": "wrong"}
    assert not registry_holds(podman, f"{host}/team/cache:web-abc", wrong)
    asked = len(store.seen)
    docker = FakeEngine(registry={f"{host}/team/cache:web-def": "sha256:1"})
    assert registry_holds(docker, f"{host}/team/cache:web-def", auth)
    assert not registry_holds(docker, f"{host}/team/cache:web-abc", auth)
    assert len(store.seen) == asked


def test_references_name_their_registry() -> None:
    assert Reference.parse("localhost:5000/team/cache:app-1") == Reference(
        "localhost:5000", "team/cache", "app-1"
    )
    assert Reference.parse("debian:bookworm") == Reference(
        "docker.io", "library/debian", "bookworm"
    )
    assert Reference.parse("ghcr.io/o/app") == Reference("ghcr.io", "o/app", "latest")


def test_a_registry_that_answers_503_for_a_while_is_asked_again(
    served: tuple[Store, str],
) -> None:
    store, host = served
    manifest = store.add_image("cache", "app-1", {"a": "b"})
    store.unavailable = 2
    assert client(host).copy("cache", manifest, "team/app", "v1") == manifest.digest
    assert [s for s in store.seen if s[2] == "503"] == store.seen[:2]
    assert store.manifests["team/app"]["v1"][1] == manifest.data
    store.unavailable = 1 + RETRIES  # longer than the retries: the registry's own answer
    with pytest.raises(RegistryError, match="manifest cache:app-1: HTTP 503 restarting"):
        client(host).manifest("cache", "app-1")
    assert store.unavailable == 0  # asked 1 + RETRIES times
