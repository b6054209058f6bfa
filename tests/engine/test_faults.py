"""Faults injected into real builds: killed processes, two builds at once, a Docker engine
that stops, a registry that dies mid-push, secrets looked for everywhere, disk hygiene.

The `held` image's last role waits inside the build container for a file that, in a
faulty build, never appears: the test injects its fault once that task has started (read
from rolecast's own progress lines), so the fault always lands mid-build.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from orchestrator.names import container_prefix

from ..conftest import DATA
from .helpers import (
    ROLECAST,
    copy_project,
    free_port,
    remove_images,
    rolecast,
    run_in,
    tag_image,
    vault_encrypt,
)
from .test_publish import PASSWORD, USER, Registry

pytestmark = pytest.mark.engine

FAULTS = DATA / "projects" / "faults"
DEBIAN = "rolecast/debian-bookworm:bookworm"
BASE_TAG = "rolecast-test/faults-base:1"
HOLD_TASK = "Wait for the hold file"
NEVER = "/nonexistent/hold"  # a hold file that never appears: the build waits mid-role


def write_spec(
    project: Path,
    *,
    marker: str,
    hold: str = "/",
    registry: str = "rolecast-test/faults",
    image: str = "held",
    extra: str = "",
    top: str = "",
) -> None:
    (project / "rolecast.yml").write_text(
        "version: 1\n"
        f"{top}"
        "defaults:\n"
        f"  registry: {registry}\n"
        "  base: faults-base\n"
        "  tags: [test]\n"
        "bases:\n"
        "  faults-base:\n"
        f"    image: {BASE_TAG}\n"
        "images:\n"
        f"  {image}:\n"
        "    roles: [marker, hold]\n"
        "    vars:\n"
        f"      marker: {marker}\n"
        f"      hold_file: {hold}\n"
        f"{extra}"
    )


def new_project(parent: Path) -> Path:
    project = copy_project(FAULTS, parent / "faults")
    # ansible.cfg is an input of every stage: this run's token keeps other runs' stages out.
    (project / "ansible.cfg").write_text(f"# run {uuid.uuid4().hex}\n[defaults]\n")
    return project


def project_id(project: Path) -> str:
    digest = hashlib.sha256(f"{socket.gethostname()}:{project.resolve()}".encode())
    return digest.hexdigest()[:16]


def build_containers(client: Any, project: Path, slug: str = "held") -> list[Any]:
    prefix = container_prefix(project_id(project), slug)
    found = client.containers.list(all=True, filters={"name": prefix})
    return [c for c in found if c.name.startswith(prefix)]


def history(project: Path, image: str = "held", env: dict[str, str] | None = None) -> list[Any]:
    done = rolecast("history", "--json", image, cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def image_id(client: Any, reference: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(reference).id)
    except ImageNotFound:
        return None


class HeldBuild:
    """`rolecast build --plain` in the background, its output collected, stopped at the
    hold task by `wait_for_hold()`."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        full = dict(os.environ) | (env or {})
        self.proc = subprocess.Popen(
            [ROLECAST, *args],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=full,
        )
        self.lines: list[str] = []
        self.held = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        stream: IO[str] | None = self.proc.stdout
        assert stream is not None
        for line in stream:
            self.lines.append(line)
            if HOLD_TASK in line:
                self.held.set()
        self.held.set()  # ended: wait_for_hold() checks which

    def wait_for_hold(self) -> None:
        assert self.held.wait(600), "no progress within 10 minutes"
        assert any(HOLD_TASK in line for line in self.lines), (
            "the build ended before the hold task:\n" + self.output
        )

    def wait(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(60)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def packer_of(pid: int) -> int:
    found = [p for p in process_tree(pid) if cmdline(p)[:2] == ["packer", "build"]]
    assert len(found) == 1, f"expected one packer under {pid}: {found}"
    return found[0]


def holders(path: Path) -> str:
    """The processes that hold `path` open, each with what runs below it."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            held = any(os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir())
        except OSError:
            continue
        if held:
            for pid in process_tree(int(entry.name)):
                lines.append(f"{pid}: {' '.join(cmdline(pid))[:200]}")
    return "\n".join(lines) or "(no process)"


def wait_until_unlocked(project: Path, slug: str = "held", timeout: float = 300) -> None:
    """Returns once no process holds the image's build lock (Packer included)."""
    fd = os.open(project / ".rolecast" / "locks" / f"image-{slug}.lock", os.O_RDWR)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "the build lock was never released:\n" + (
                    holders(project / ".rolecast" / "locks" / f"image-{slug}.lock")
                )
                time.sleep(0.2)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def base(docker_engine: Any) -> str:
    import docker.errors

    try:
        tag_image(docker_engine, DEBIAN, BASE_TAG)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{DEBIAN} is missing: run scripts/setup.sh", pytrace=False)
    return BASE_TAG


def held_build(
    project: Path, client: Any, marker: str, env: dict[str, str] | None = None
) -> tuple[str | None, HeldBuild]:
    """The image `held:test` names now, and a build of a new `marker` waiting at its hold
    task, where the fault goes in."""
    before = image_id(client, "rolecast-test/faults/held:test")
    write_spec(project, marker=marker, hold=NEVER)
    build = HeldBuild(project, "build", "--plain", "held", env=env)
    build.wait_for_hold()
    return before, build


@pytest.fixture
def held(base: str, docker_engine: Any, tmp_path: Path) -> Iterator[Path]:
    """A project whose `held` image was built once (marker `one`)."""
    project = new_project(tmp_path)
    write_spec(project, marker="one")
    done = rolecast("build", "--plain", "held", cwd=project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    yield project
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout or "[]")
    remove_images(docker_engine, *[s["reference"] for s in stages])


# -- 1. process faults ---------------------------------------------------------------------


def test_packer_killed_mid_build_fails_cleanly_and_moves_no_tag(
    held: Path, docker_engine: Any
) -> None:
    # Where programs that honour TMPDIR write: short, for Packer's plugin sockets.
    scratch = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    before, build = held_build(held, docker_engine, "two", env={"TMPDIR": str(scratch)})
    os.kill(packer_of(build.proc.pid), signal.SIGKILL)
    assert build.wait() == 1, build.output
    # Packer, killed, removed none of its files (inventory, key pair): none was here.
    left = sorted(p.name for p in scratch.iterdir())
    shutil.rmtree(scratch)
    assert left == []
    assert not list((held / ".rolecast").rglob("ansible-key*"))
    assert "packer was killed (SIGKILL)" in build.output
    assert "no tag was created or moved" in build.output
    assert build_containers(docker_engine, held) == []
    assert image_id(docker_engine, "rolecast-test/faults/held:test") == before
    assert history(held)[0]["result"] == "failed"


def test_rolecast_killed_with_everything_it_started_is_recovered_by_the_next_build(
    held: Path, docker_engine: Any
) -> None:
    before, build = held_build(held, docker_engine, "three")
    victims = process_tree(build.proc.pid)  # rolecast, its guard, packer, ansible, docker
    for sig in (signal.SIGSTOP, signal.SIGKILL):  # none may react to the others' deaths
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass  # a short-lived one (a worker, a docker call) ended meanwhile
    build.wait()
    orphans = build_containers(docker_engine, held)
    assert len(orphans) == 1 and orphans[0].status == "running"  # the fault is real
    assert history(held)[0]["result"] == "running"
    assert image_id(docker_engine, "rolecast-test/faults/held:test") == before

    write_spec(held, marker="three", hold="/")
    done = rolecast("build", "--plain", "held", cwd=held)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert f"took over the lock of image held left by pid {build.proc.pid}" in out
    assert f"removed container {orphans[0].short_id}" in out
    assert f"by pid {build.proc.pid} did not finish; its record now says interrupted" in out
    assert build_containers(docker_engine, held) == []
    records = history(held)
    assert [r["result"] for r in records[:2]] == ["built", "interrupted"]
    assert records[1]["pid"] == build.proc.pid
    assert (
        run_in(docker_engine, "rolecast-test/faults/held:test", "cat", "/etc/faults-marker")
        == "three\n"
    )


def test_rolecast_killed_alone_its_packer_stops_cleans_up_and_tags_nothing(
    held: Path, docker_engine: Any
) -> None:
    before, build = held_build(held, docker_engine, "four")
    packer = packer_of(build.proc.pid)
    os.kill(build.proc.pid, signal.SIGKILL)  # only rolecast: an OOM kill, a lost runner
    build.wait()
    # The guard interrupts Packer, which removes its container and exits; until then it
    # holds the image's lock, so no next build can start against its leftovers.
    wait_until_unlocked(held)
    assert not Path(f"/proc/{packer}").exists() or cmdline(packer)[:1] != ["packer"]
    assert build_containers(docker_engine, held) == []
    assert image_id(docker_engine, "rolecast-test/faults/held:test") == before
    planned = json.loads(rolecast("plan", "--json", "held", cwd=held).stdout)
    assert planned[0]["status"] != "fresh"


# -- 2. concurrency ------------------------------------------------------------------------


def test_two_builds_at_once_one_waits_and_the_tag_ends_on_a_complete_image(
    held: Path, docker_engine: Any
) -> None:
    write_spec(held, marker="five")
    first = HeldBuild(held, "build", "--plain", "held")
    second = HeldBuild(held, "build", "--plain", "held")
    assert first.wait() == 0, first.output[-3000:]
    assert second.wait() == 0, second.output[-3000:]
    waited = [b for b in (first, second) if "waiting: image held is locked by pid" in b.output]
    assert len(waited) == 1, first.output + second.output
    records = history(held)[:2]
    assert sorted(r["result"] for r in records) == ["built", "fresh"]
    assert records[0]["fingerprint"] == records[1]["fingerprint"]
    tagged = docker_engine.images.get("rolecast-test/faults/held:test")
    assert tagged.labels["io.rolecast.fingerprint"] == records[0]["fingerprint"]
    with sqlite3.connect(held / ".rolecast" / "history.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- 3. registry faults --------------------------------------------------------------------


class CuttingProxy:
    """A TCP relay in front of the registry. After `limit` uploaded bytes it kills the
    registry and drops every connection: the registry dies in the middle of a push."""

    def __init__(self, registry: Registry, port: int, limit: int | None) -> None:
        self.registry = registry
        self.port = port
        self.limit = limit
        self.uploaded = 0
        self.cut = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(32)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.registry.port))
            except OSError:
                client.close()  # the registry is dead: so is the connection
                continue
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, dest: socket.socket, upload: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if upload:
                    with self.lock:
                        self.uploaded += len(chunk)
                        over = self.limit is not None and self.uploaded > self.limit
                    if over:
                        self.kill()
                        return
                dest.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, dest):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def kill(self) -> None:
        if self.cut.is_set():
            return
        self.cut.set()
        if self.registry.process is not None:
            self.registry.process.kill()
            self.registry.process.wait(30)
            self.registry.process = None
        self.close()

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.close()
                except OSError:
                    pass


def test_registry_killed_mid_push_retries_then_fails_and_the_next_run_pushes_without_building(
    base: str, docker_engine: Any, tmp_path: Path
) -> None:
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry")
    registry.start()
    port = free_port()
    proxy = CuttingProxy(registry, port, limit=2_000_000)
    project = new_project(tmp_path)
    repository = f"localhost:{port}/team"
    write_spec(
        project,
        marker="pushed",
        registry=repository,
        extra='    tags: ["{{ version }}", latest]\n',
    )
    creds = {"ROLECAST_REGISTRY_USERNAME": USER, "ROLECAST_REGISTRY_PASSWORD": PASSWORD}
    try:
        done = rolecast(
            "build", "--plain", "--push", "--version", "1.0.0", "held", cwd=project, env=creds
        )
        out = done.stdout + done.stderr
        assert proxy.cut.is_set(), "the push never reached the cut: " + out[-2000:]
        assert done.returncode == 1, out[-3000:]
        assert "failed 4 times" in out
        lines = [line.rstrip() for line in out.splitlines()]
        assert any(line.endswith(f"pushing {repository}/held:1.0.0") for line in lines)
        assert not any(line.endswith(f"pushing {repository}/held:latest") for line in lines)
        registry.start()  # the registry is back, with what it stored before it died
        assert registry.digest_of("team/held", "latest") is None
        assert registry.digest_of("team/held", "1") is None

        proxy = CuttingProxy(registry, port, limit=None)
        again = rolecast(
            "build", "--json", "--push", "--version", "1.0.0", "held", cwd=project, env=creds
        )
        assert again.returncode == 0, again.stderr[-3000:]
        (result,) = json.loads(again.stdout)["images"]
        assert result["result"] == "fresh"  # pushed without building again
        assert result["stages_run"] == []
        pushed = {p["reference"].rsplit(":", 1)[1]: p["digest"] for p in result["pushed"]}
        assert {"1.0.0", "1.0", "1", "latest"} <= set(pushed)
        assert registry.digest_of("team/held", "latest") == pushed["1.0.0"]
    finally:
        proxy.close()
        registry.stop()
        remove_images(
            docker_engine, *[f"{repository}/held:{t}" for t in ("1.0.0", "1.0", "1", "latest")]
        )


# -- 6. a second Docker engine, and 1c. the engine stopping mid-build ----------------------


class SecondEngine:
    """A dockerd of the test's own, as if on another machine: its socket, data and state
    under a temporary directory, its own bridge (the default one, docker0, belongs to the
    main engine; a second dockerd with `--bridge=none` would delete it), no network for its
    containers, and no view of the controller's Packer directory."""

    BRIDGE = "rolecast-t0"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Any:
        import docker

        dockerd = shutil.which("dockerd")
        if dockerd is None or os.geteuid() != 0:
            pytest.fail("a second engine needs dockerd and root: run scripts/setup.sh as root")
        if subprocess.run(["ip", "link", "show", self.BRIDGE], capture_output=True).returncode:
            for command in (
                ["ip", "link", "add", "name", self.BRIDGE, "type", "bridge"],
                ["ip", "addr", "add", "172.31.254.1/24", "dev", self.BRIDGE],
                ["ip", "link", "set", self.BRIDGE, "up"],
            ):
                subprocess.run(command, check=True)
        log = (self.root / "dockerd.log").open("ab")
        # Like an engine on another machine, it does not see the controller's files: in
        # its own mount namespace, an empty tmpfs hides the directory where Packer keeps
        # what it shares with a local engine. Builds must not depend on it.
        hidden = Path.home() / ".packer.d"
        hidden.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation=private",
                "sh",
                "-c",
                f'mount -t tmpfs rolecast-hidden "{hidden}" && exec "$0" "$@"',
                dockerd,
                f"--host={self.host}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                f"--bridge={self.BRIDGE}",
                "--iptables=false",
                "--ip6tables=false",
                "--shutdown-timeout=2",
                # No NAT for its bridge, so no network: a resolver that refuses at once
                # makes apt fail fast (the bootstrap then goes on without python3-apt).
                "--dns=127.0.0.1",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                client = docker.DockerClient(base_url=self.host, timeout=120)
                client.ping()
                return client
            except Exception:
                assert self.process.poll() is None, (self.root / "dockerd.log").read_text()
                assert time.monotonic() < deadline, "the second dockerd did not answer"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(120)
            self.process = None


@pytest.fixture(scope="module")
def second_engine(base: str, docker_engine: Any) -> Iterator[tuple[SecondEngine, Any]]:
    root = Path(tempfile.mkdtemp(prefix="rc-engine-", dir="/tmp"))  # a short socket path
    engine = SecondEngine(root)
    client = engine.start()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    save = subprocess.Popen(["docker", "save", DEBIAN], stdout=subprocess.PIPE, env=env)
    loaded = subprocess.run(
        ["docker", "load"],
        stdin=save.stdout,
        capture_output=True,
        env=env | {"DOCKER_HOST": engine.host},
    )
    assert save.wait() == 0 and loaded.returncode == 0, loaded.stderr
    tag_image(client, DEBIAN, BASE_TAG)
    yield engine, client
    client.close()
    engine.stop()
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["ip", "link", "delete", SecondEngine.BRIDGE], capture_output=True)


@pytest.fixture(scope="module")
def remote_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = new_project(tmp_path_factory.mktemp("remote"))
    write_spec(project, marker="remote-one", registry="rolecast-test/remote")
    return project


@pytest.mark.docker
def test_a_second_engine_chosen_with_docker_host_gets_the_image_and_the_default_none(
    second_engine: tuple[SecondEngine, Any], remote_project: Path, docker_engine: Any
) -> None:
    engine, client = second_engine
    done = rolecast("--docker-host", engine.host, "build", "--plain", "held", cwd=remote_project)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (
        run_in(client, "rolecast-test/remote/held:test", "cat", "/etc/faults-marker")
        == "remote-one\n"
    )
    assert image_id(docker_engine, "rolecast-test/remote/held:test") is None
    listed = rolecast("--docker-host", engine.host, "cache", "ls", "--json", cwd=remote_project)
    stages = [s["reference"] for s in json.loads(listed.stdout)]
    assert len(stages) == 3  # image, marker, hold: all on the second engine
    assert [s for s in stages if image_id(docker_engine, s)] == []
    # DOCKER_HOST selects it as well: the plan reads the second engine, where it is fresh.
    planned = rolecast(
        "plan", "--json", "held", cwd=remote_project, env={"DOCKER_HOST": engine.host}
    )
    assert json.loads(planned.stdout)[0]["status"] == "fresh"
    elsewhere = rolecast("plan", "--json", "held", cwd=remote_project)
    assert json.loads(elsewhere.stdout)[0]["status"] != "fresh"


@pytest.mark.docker
def test_engine_stopped_mid_build_fails_clearly_and_the_next_build_works(
    second_engine: tuple[SecondEngine, Any], remote_project: Path
) -> None:
    engine, client = second_engine
    before = image_id(client, "rolecast-test/remote/held:test")
    assert before is not None
    write_spec(remote_project, marker="remote-two", hold=NEVER, registry="rolecast-test/remote")
    build = HeldBuild(remote_project, "--docker-host", engine.host, "build", "--plain", "held")
    build.wait_for_hold()
    engine.stop()
    assert build.wait() == 1, build.output[-3000:]
    assert f"the Docker engine ({engine.host}) stopped answering during the build" in build.output
    assert "Traceback" not in build.output

    client = engine.start()
    assert image_id(client, "rolecast-test/remote/held:test") == before  # no tag moved
    left = build_containers(client, remote_project)
    assert len(left) == 1  # the engine stopped it; nobody could remove it
    write_spec(remote_project, marker="remote-two", registry="rolecast-test/remote")
    done = rolecast("--docker-host", engine.host, "build", "--plain", "held", cwd=remote_project)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert f"removed container {left[0].short_id}" in out
    assert build_containers(client, remote_project) == []
    assert (
        run_in(client, "rolecast-test/remote/held:test", "cat", "/etc/faults-marker")
        == "remote-two\n"
    )


# -- 5. secrets ----------------------------------------------------------------------------


class ProcessWatcher:
    """Samples, while a build runs, the argv of every process on the machine and the
    environment of every process the build started (rolecast's own excepted)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.stop = threading.Event()
        self.root_pid = 0
        self.samples = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            done = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True)
            self.seen.append(done.stdout)
            if self.root_pid:
                for pid in process_tree(self.root_pid)[1:]:
                    try:
                        self.seen.append(Path(f"/proc/{pid}/environ").read_bytes())
                    except OSError:
                        pass
            self.samples += 1
            self.stop.wait(0.05)


def image_files(client: Any, reference: str, skip: set[str]) -> bytes:
    """Every regular file of the image's filesystem, but those in `skip`."""
    container = client.containers.create(reference, ["true"], entrypoint="")
    try:
        with tempfile.TemporaryFile() as tar_file:
            for chunk in container.export():
                tar_file.write(chunk)
            tar_file.seek(0)
            out = []
            with tarfile.open(fileobj=tar_file) as tar:
                for member in tar:
                    if member.isfile() and member.name not in skip:
                        handle = tar.extractfile(member)
                        assert handle is not None
                        out.append(handle.read())
            return b"\n".join(out)
    finally:
        container.remove(force=True)


def test_no_secret_reaches_disk_logs_argv_environment_history_labels_or_image(
    base: str, docker_engine: Any, tmp_path: Path
) -> None:
    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry")
    registry.start()
    project = new_project(tmp_path)
    vaulted = f"vaulted-{uuid.uuid4().hex}"
    vault_password = f"vaultpw-{uuid.uuid4().hex}"
    password_file = tmp_path / "vault-password"  # outside the project, as in a pipeline
    password_file.write_text(vault_password + "\n")
    (project / "inventory" / "group_vars").mkdir(parents=True)
    (project / "inventory" / "hosts").write_text("[app]\n")
    vault_file = project / "inventory" / "group_vars" / "all.yml"
    vault_file.write_text(f"---\napp_db_password: {vaulted}\n")
    vault_encrypt(vault_file, password_file)
    repository = f"{registry.address}/team"
    (project / "rolecast.yml").write_text(
        "version: 1\n"
        "inventory: inventory\n"
        "defaults:\n"
        f"  registry: {repository}\n"
        "  base: faults-base\n"
        "  tags: [test]\n"
        "bases:\n"
        "  faults-base:\n"
        f"    image: {BASE_TAG}\n"
        "images:\n"
        "  vaulted:\n"
        "    groups: [app]\n"
        "    roles: [secret]\n"
        "    idempotence: true\n"  # the gate runs Ansible again, through ansible-runner
        "    push: true\n"
    )
    secrets = [vaulted.encode(), vault_password.encode(), PASSWORD.encode()]
    watcher = ProcessWatcher()
    watcher.thread.start()
    build = subprocess.Popen(
        [ROLECAST, "build", "--plain", "--vault-password-file", str(password_file), "vaulted"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ)
        | {"ROLECAST_REGISTRY_USERNAME": USER, "ROLECAST_REGISTRY_PASSWORD": PASSWORD},
    )
    watcher.root_pid = build.pid
    try:
        out, err = build.communicate(timeout=900)
    finally:
        watcher.stop.set()
        watcher.thread.join(30)
        registry.stop()
    assert build.returncode == 0, (out + err)[-3000:].decode(errors="replace")
    assert watcher.samples > 10  # the build was watched while it ran
    reference = f"{repository}/vaulted:test"
    # The role got the secret: it is in the file the role wrote, and only there.
    assert run_in(docker_engine, reference, "cat", "/etc/app-secret") == vaulted + "\n"

    places: dict[str, bytes] = {
        "stdout/stderr": out + err,
        "ps and environments during the build": b"\n".join(watcher.seen),
        "image files (but /etc/app-secret)": image_files(
            docker_engine, reference, skip={"etc/app-secret"}
        ),
        "docker history --no-trunc": subprocess.run(
            ["docker", "history", "--no-trunc", reference], capture_output=True
        ).stdout,
        "image config and labels": json.dumps(docker_engine.images.get(reference).attrs).encode(),
    }
    for path in (project / ".rolecast").rglob("*"):  # logs, templates, history, state
        if path.is_file():
            places[str(path.relative_to(project))] = path.read_bytes()
    leaks = [(where, s.decode()) for where, text in places.items() for s in secrets if s in text]
    assert leaks == []
    assert any("/build/vaulted/template.pkr.json" in p for p in places)  # looked there too
    remove_images(docker_engine, reference)
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout or "[]")
    remove_images(docker_engine, *[s["reference"] for s in stages])


# -- 7. disk hygiene -----------------------------------------------------------------------


def test_twenty_rebuilds_leave_no_dangling_image_and_prune_returns_to_the_current_stages(
    base: str, docker_engine: Any, tmp_path: Path
) -> None:
    project = new_project(tmp_path)
    name = f"hyg-{uuid.uuid4().hex[:8]}"  # its own images only carry this label
    counter = project / "roles" / "counter" / "tasks"
    counter.mkdir(parents=True)
    (project / "rolecast.yml").write_text(
        "version: 1\n"
        "defaults:\n"
        "  registry: rolecast-test/hygiene\n"
        "  base: faults-base\n"
        "  tags: [test]\n"
        "bases:\n"
        "  faults-base:\n"
        f"    image: {BASE_TAG}\n"
        "images:\n"
        f"  {name}:\n"
        "    roles: [marker, counter]\n"
        "    vars: {marker: hygiene}\n"
    )
    ours = {"label": f"io.rolecast.image={name}"}
    try:
        for round in range(21):  # a first build, then 20 rebuilds, each with a changed role
            (counter / "main.yml").write_text(
                "---\n- name: Count\n  ansible.builtin.copy:\n"
                f"    content: '{round}'\n    dest: /etc/counter\n    mode: '0644'\n"
            )
            done = rolecast("build", "--json", name, cwd=project)
            assert done.returncode == 0, done.stderr[-3000:]
            (result,) = json.loads(done.stdout)["images"]
            assert result["result"] == "built"
            if round:
                assert result["stages_reused"] == ["image", "role marker"]
        assert docker_engine.images.list(filters={**ours, "dangling": True}) == []
        # Three current stages, 20 replaced `counter` stages, the image.
        assert len(docker_engine.images.list(filters=ours)) == 24

        kept = rolecast("cache", "prune", "--keep", "2", cwd=project)
        assert kept.returncode == 0, kept.stderr
        assert len(docker_engine.images.list(filters=ours)) == 3 + 2 + 1
        pruned = rolecast("cache", "prune", cwd=project)
        assert pruned.returncode == 0, pruned.stderr
        listed = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout)
        assert [s["current"] for s in listed] == [True, True, True]
        current = {s["image_id"] for s in listed}
        current.add(str(docker_engine.images.get(f"rolecast-test/hygiene/{name}:test").id))
        assert {str(i.id) for i in docker_engine.images.list(filters=ours)} == current
        assert docker_engine.images.list(filters={**ours, "dangling": True}) == []
    finally:
        for found in docker_engine.images.list(filters=ours):
            for tag in found.tags:
                remove_images(docker_engine, tag)
