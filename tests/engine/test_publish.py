"""Pushing to a real registry: Debian's docker-registry on 127.0.0.1, with an htpasswd file
this test writes (never the package's default config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines import connect

from ..conftest import DATA
from .helpers import (
    ROLECAST,
    copy_project,
    engine_kind,
    free_port,
    remove_images,
    rolecast,
    tag_image,
    tag_names,
)

pytestmark = pytest.mark.engine

BASE_IMAGE = "rolecast/debian-bookworm:bookworm"
FOUR_CMD = "cmd: [/bin/cat, /etc/layers/fourth]"
USER = "ci-pusher"
PASSWORD = f"pw-{uuid.uuid4().hex}"  # unique: grepping for it finds only real leaks


class Registry:
    def __init__(self, root: Path) -> None:
        import bcrypt

        self.root = root
        self.port = free_port()
        self.address = f"localhost:{self.port}"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()
        (root / "htpasswd").write_text(f"{USER}:{hashed}\n")
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
            f"auth: {{htpasswd: {{realm: rolecast-test, path: {root / 'htpasswd'}}}}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            pytest.fail("docker-registry is not installed: run scripts/setup.sh", pytrace=False)
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(self.root / "config.yml")], stdout=log, stderr=log
        )
        for _ in range(200):  # until it answers: 401 without credentials
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"docker-registry did not start: {(self.root / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None

    def digest_of(self, name: str, tag: str) -> str | None:
        """The digest the registry serves for name:tag, or None."""
        import base64

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/{name}/manifests/{tag}",
            method="HEAD",
            headers={
                # Docker pushes Docker's manifest, Podman an OCI one
                "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                "application/vnd.oci.image.manifest.v1+json",
                "Authorization": "Basic "
                + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return str(response.headers["Docker-Content-Digest"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    found = Registry(tmp_path_factory.mktemp("registry"))
    found.start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def publishing(
    registry: Registry, docker_engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The layers project pushing to the test registry; `other` built once."""
    tag_image(docker_engine, BASE_IMAGE, "rolecast-test/layers-base:1")
    project = copy_project(DATA / "projects" / "layers", tmp_path_factory.mktemp("pub") / "p")
    (project / "ansible.cfg").write_text(f"# run {uuid.uuid4().hex}\n[defaults]\n")
    spec = project / "rolecast.yml"
    spec.write_text(
        spec.read_text().replace(
            "registry: rolecast-test/layers", f"registry: {registry.address}/team"
        )
    )
    yield project
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout)
    remove_images(docker_engine, *[s["reference"] for s in stages])


def creds(password: str = PASSWORD) -> dict[str, str]:
    return {"ROLECAST_REGISTRY_USERNAME": USER, "ROLECAST_REGISTRY_PASSWORD": password}


def test_push_every_tag_and_pull_back_by_digest(
    publishing: Path, registry: Registry, docker_engine: Any
) -> None:
    report = publishing / "out" / "report.json"
    done = rolecast(
        "build", "--plain", "--push", "--version", "1.4.2", "--tag", "{{ version }}",
        "--tag", "latest", "--report", str(report), "other",
        cwd=publishing, env=creds(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (other,) = json.loads(report.read_text())["images"]
    repo = f"{registry.address}/team/other"
    pushed = [p["reference"] for p in other["pushed"]]
    # The immutable tags first, the moving ones (1.4, 1, latest) after them.
    assert pushed == [f"{repo}:{t}" for t in ["test", "1.4.2", "1.4", "1", "latest"]]
    record = json.loads(rolecast("history", "--json", "other", cwd=publishing).stdout)[0]
    assert record["pushed"] == other["pushed"]
    digests = {p["digest"] for p in other["pushed"]}
    assert len(digests) == 1
    (digest,) = digests
    assert registry.digest_of("team/other", "1.4.2") == digest
    assert registry.digest_of("team/other", "latest") == digest

    remove_images(docker_engine, *[f"{repo}:{t}" for t in ["test", "1.4.2", "1.4", "1", "latest"]])
    # Through Rolecast's engine: Podman's compatible pull takes no plain HTTP (its own does)
    connect().pull(f"{repo}@{digest}", {"username": USER, "password": PASSWORD})
    pulled = docker_engine.images.get(f"{repo}@{digest}")
    output = docker_engine.containers.run(
        pulled.id, ["cat", "/etc/layers/first"], remove=True, entrypoint=""
    )
    assert output.decode() == "first\n"

    # The password is nowhere Rolecast writes, nor in the image.
    for path in publishing.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in done.stdout + done.stderr
    history = subprocess.run(
        ["docker", "history", "--no-trunc", pulled.id], capture_output=True, text=True
    ).stdout
    assert history and PASSWORD not in history
    assert PASSWORD not in json.dumps(pulled.attrs)


def test_wrong_password_fails_at_once_without_retries(publishing: Path, registry: Registry) -> None:
    started = time.monotonic()
    done = rolecast("push", "other", cwd=publishing, env=creds("not-the-password"))
    assert done.returncode == 1
    assert f"registry {registry.address} refused the credentials" in done.stderr
    assert "not retried" in done.stderr
    assert "retry" not in done.stdout
    assert time.monotonic() - started < 30


def test_registry_down_bounded_retries_and_latest_untouched(
    publishing: Path, registry: Registry
) -> None:
    before = registry.digest_of("team/other", "latest")
    assert before is not None
    registry.stop()
    try:
        done = rolecast(
            "push", "--version", "2.0.0", "--tag", "{{ version }}", "--tag", "latest", "other",
            cwd=publishing, env=creds(),
        )  # fmt: skip
    finally:
        registry.start()
    assert done.returncode == 1
    assert f"registry {registry.address} failed 4 times" in done.stderr
    assert [line for line in done.stdout.splitlines() if "retry" in line][-1].count("retry 3")
    # The first tag failed: no moving tag was attempted, `latest` is where it was.
    assert f"pushing {registry.address}/team/other:latest" not in done.stdout
    assert registry.digest_of("team/other", "latest") == before


def test_login_stores_credentials_for_later_pushes(
    publishing: Path, registry: Registry, tmp_path: Path
) -> None:
    """Docker's config keeps them on Docker, Podman's auth file on Podman (where `podman
    login` writes, and a Podman user's pushes read)."""
    env = {
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "REGISTRY_AUTH_FILE": str(tmp_path / "podman-auth.json"),
    }
    stored = {
        "docker": tmp_path / "docker-config" / "config.json",
        "podman": tmp_path / "podman-auth.json",
    }
    done = subprocess.run(
        [ROLECAST, "login", registry.address, "--username", USER, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=os.environ | env,
        cwd=publishing,
    )
    assert done.returncode == 0, done.stderr
    kind = engine_kind()
    auths = json.loads(stored[kind].read_text())["auths"]
    assert not stored["podman" if kind == "docker" else "docker"].exists()
    assert registry.address in auths
    pushed = rolecast("push", "other", cwd=publishing, env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushing {registry.address}/team/other:test" in pushed.stdout


def test_a_second_runner_pulls_every_stage_and_runs_no_ansible_task(
    publishing: Path, registry: Registry, docker_engine: Any
) -> None:
    cache = f"{registry.address}/team/stages"
    first = rolecast(
        "build", "--plain", "--json", "--cache-to", cache, "four", cwd=publishing, env=creds()
    )
    assert first.returncode == 0, first.stderr[-3000:]
    (built,) = json.loads(first.stdout)["images"]
    assert built["result"] == "built"

    # A fresh runner: none of the project's images, no state, one registry.
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=publishing).stdout)
    four = [s["reference"] for s in stages if s["image"] == "four"]
    assert len(four) == 5
    remove_images(docker_engine, *built["tags"], *four)
    shutil.rmtree(publishing / ".rolecast")
    left = json.loads(rolecast("cache", "ls", "--json", cwd=publishing).stdout)
    assert [s for s in left if s["image"] == "four"] == []

    # Another config: the cache holds every stage of the image, not the image itself.
    spec = publishing / "rolecast.yml"
    before = spec.read_text()
    spec.write_text(before.replace(FOUR_CMD, "cmd: [/bin/cat, /etc/layers/fourth, /dev/null]"))
    try:
        second = rolecast(
            "build", "--plain", "--json", "--cache-from", cache, "four", cwd=publishing,
            env=creds(),
        )  # fmt: skip
    finally:
        spec.write_text(before)
    assert second.returncode == 0, second.stderr[-3000:]
    (again,) = json.loads(second.stdout)["images"]
    assert again["stages_pulled"] == [
        "image", "role first", "role second", "role third", "role fourth",
    ]  # fmt: skip
    assert again["stages_run"] == ["commit"]
    record = json.loads(rolecast("history", "--json", "four", cwd=publishing).stdout)[0]
    assert record["roles_run"] == []
    output = docker_engine.containers.run(again["image_id"], remove=True)
    assert output.decode() == "fourth, version 1\n"


class Creations:
    """The containers the engine creates for this project while the block runs, from a live
    event stream; a marker container's event closes the window (every earlier event has
    arrived by then)."""

    def __init__(self, client: Any, project: Path, registry: Registry) -> None:
        from orchestrator.names import project_identity, stage_prefix

        identity = project_identity(project)
        self.client = client
        self.ours = (f"rolecast-{identity}", stage_prefix(identity), registry.address)
        self.created: list[dict[str, Any]] = []
        self.marker: str | None = None
        self.seen_marker = threading.Event()

    def __enter__(self) -> Creations:
        self.stream = self.client.events(
            decode=True, filters={"type": "container", "event": "create"}
        )
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()
        return self

    def _listen(self) -> None:
        try:
            for event in self.stream:
                self.created.append(event)  # then look for the marker: no lost wake-up
                if self.marker is not None and self.marker in self.ids:
                    self.seen_marker.set()
        except Exception:  # closed
            return

    def __exit__(self, *exc: object) -> None:
        marker = self.client.containers.create(BASE_IMAGE, ["true"])
        self.marker = marker.id
        try:
            arrived = self.marker in self.ids or self.seen_marker.wait(60)
            assert arrived, "the marker's create event never came"
        finally:
            marker.remove(force=True)
            self.stream.close()

    @property
    def ids(self) -> set[str]:
        return {str(e.get("id")) for e in list(self.created)}

    @property
    def count(self) -> int:
        attributes = [e.get("Actor", {}).get("Attributes", {}) for e in self.created]
        return sum(
            1
            for a in attributes
            if str(a.get("name", "")).startswith(self.ours[0])
            or str(a.get("image", "")).startswith(self.ours[1:])
        )


def local_tags(client: Any, project: Path, registry: Registry) -> set[str]:
    """The tags of this project's images, stages and registry in the engine (others build
    on the same engine meanwhile)."""
    from orchestrator.names import project_identity, stage_prefix

    ours = (registry.address, stage_prefix(project_identity(project)))
    found = (tag for image in client.images.list() for tag in tag_names(image))
    return {tag for tag in found if tag.startswith(ours)}


def wipe(client: Any, project: Path, results: list[dict[str, Any]]) -> None:
    """What a new runner lacks: the images' tags, their stages, apt volumes and state."""
    from orchestrator.names import apt_volumes, project_identity

    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout)
    names = {r["name"] for r in results}
    remove_images(
        client,
        *[t for r in results for t in r["tags"]],
        *[s["reference"] for s in stages if s["image"] in names],
    )
    for name in names:
        for volume in apt_volumes(project_identity(project), name):
            try:
                client.volumes.get(volume).remove()
            except Exception:  # absent
                pass
    shutil.rmtree(project / ".rolecast", ignore_errors=True)


def test_a_second_runner_pushes_what_the_registry_holds_without_pull_or_container(
    publishing: Path, registry: Registry, docker_engine: Any
) -> None:
    from orchestrator.names import project_identity, stage_prefix

    cache = f"{registry.address}/team/shared"
    first = rolecast(
        "build", "--plain", "--json", "--push", "--cache-to", cache, "four", "child",
        cwd=publishing, env=creds(),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    built = json.loads(first.stdout)["images"]
    assert [b["name"] for b in built] == ["four", "child"]
    wipe(docker_engine, publishing, built)
    before = local_tags(docker_engine, publishing, registry)

    planned = rolecast(
        "plan", "--json", "--cache-from", cache, "child", cwd=publishing, env=creds()
    )
    assert planned.returncode == 0, planned.stderr[-3000:]
    for item in json.loads(planned.stdout):
        assert item["status"] == "fresh", item
        assert item["registry"] == f"{cache}:{item['name']}-{item['fingerprint'][:32]}"

    with Creations(docker_engine, publishing, registry) as creations:
        second = rolecast(
            "build", "--plain", "--json", "--push", "--cache-from", cache, "four", "child",
            cwd=publishing, env=creds(),
        )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert creations.count == 0
    again = json.loads(second.stdout)["images"]
    for result, old in zip(again, built, strict=True):
        assert result["result"] == "fresh"
        assert result["stages_pulled"] == []
        assert result["image_id"] == old["image_id"]  # the config digest is the image id
        assert [p["reference"] for p in result["pushed"]] == old["tags"]
        for pushed in result["pushed"]:
            name, tag = pushed["reference"].removeprefix(registry.address + "/").split(":")
            assert registry.digest_of(name, tag) == pushed["digest"]
    # Nothing pulled: no stage, no image of the project, no cache tag appeared.
    assert local_tags(docker_engine, publishing, registry) - before == set()

    # Without --push, in a wiped store: only the final images are pulled.
    wipe(docker_engine, publishing, again)
    third = rolecast(
        "build", "--plain", "--json", "--cache-from", cache, "four", "child",
        cwd=publishing, env=creds(),
    )  # fmt: skip
    assert third.returncode == 0, third.stderr[-3000:]
    pulled = json.loads(third.stdout)["images"]
    assert [r["result"] for r in pulled] == ["fresh", "fresh"]
    appeared = local_tags(docker_engine, publishing, registry) - before
    assert appeared == {t for r in pulled for t in r["tags"]}
    identity = project_identity(publishing)
    assert not any(t.startswith((stage_prefix(identity), cache)) for t in appeared)
    output = docker_engine.containers.run(pulled[0]["image_id"], remove=True)
    assert output.decode() == "fourth, version 1\n"
