"""Podman as the engine, without Podman: the choice of engine (a fake API service on a
unix socket), the docker shim Packer runs (with a stand-in `podman` that prints what it
was given), the translation of `cp` and `commit`, and the set-up's containers.conf."""

from __future__ import annotations

import json
import os
import socketserver
import stat
import subprocess
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from orchestrator.build.packer import packer_environment
from orchestrator.engines import connect, engine_version
from orchestrator.engines.docker import DockerEngine
from orchestrator.engines.podman import (
    PODMAN_ADDRESS,
    PodmanEngine,
    auth_files,
    is_podman,
    local_name,
    shim_directory,
    shim_script,
    short_name,
)
from orchestrator.engines.podman_cli import (
    commit_arguments,
    container_of,
    copy_arguments,
    image_id,
    podman_changes,
    with_stop_signal,
)
from orchestrator.errors import ToolMissingError

from .conftest import ROOT

PODMAN_VERSION = {
    "Version": "4.3.1",
    "ApiVersion": "1.41",
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}, {"Name": "Conmon"}],
}
DOCKER_VERSION = {"Version": "20.10.24", "Components": [{"Name": "Engine"}]}


class FakeService(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    version: dict[str, Any] = {}
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b"OK" if self.path == "/_ping" else json.dumps(self.version).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(version: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    seen: list[str] = []
    handler = type("Service", (FakeService,), {"version": version, "seen": seen})
    with tempfile.TemporaryDirectory(prefix="rc") as directory:  # a socket path is short
        path = f"{directory}/podman.sock"
        with socketserver.ThreadingUnixStreamServer(path, handler) as server:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
            monkeypatch.delenv("ROLECAST_ENGINE", raising=False)
            yield seen
            server.shutdown()


@pytest.fixture
def podman_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield from serve(PODMAN_VERSION, monkeypatch)


@pytest.fixture
def docker_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    yield from serve(DOCKER_VERSION, monkeypatch)


def test_a_socket_that_answers_as_podman_is_podman(podman_service: list[str]) -> None:
    engine = connect()
    assert isinstance(engine, PodmanEngine)
    assert engine.version() == "4.3.1"
    assert engine_version() == ("podman", "4.3.1")
    assert podman_service[:2] == ["/_ping", "/version"]


def test_version_names_the_engine_s_kind(podman_service: list[str], cli: Any) -> None:
    shown = cli("--version").stdout.splitlines()[-1]
    assert shown == f"podman engine 4.3.1 at {os.environ['DOCKER_HOST']}"


def test_a_docker_socket_stays_docker(docker_service: list[str]) -> None:
    engine = connect()
    assert type(engine) is DockerEngine
    assert engine.packer_path() == []


def test_the_engine_kind_given_is_not_asked(
    docker_service: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLECAST_ENGINE", "podman")
    assert isinstance(connect(), PodmanEngine)
    monkeypatch.setenv("ROLECAST_ENGINE", "docker")
    assert type(connect()) is DockerEngine
    assert "/version" not in docker_service


def test_no_podman_service_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    monkeypatch.setenv("ROLECAST_ENGINE", "podman")
    with pytest.raises(ToolMissingError) as caught:
        connect()
    first, advice = str(caught.value).split("\n")
    assert first.startswith(f"no Podman API service answers at unix://{tmp_path}/absent.sock")
    assert advice.startswith("start it: podman system service --time=0")


def test_engine_podman_alone_says_how_to_start_podman_s_own_socket(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if Path(PODMAN_ADDRESS.removeprefix("unix://")).exists():
        pytest.skip(f"a Podman service listens at {PODMAN_ADDRESS} on this machine")
    for name in ("DOCKER_HOST", "ROLECAST_ENGINE"):  # set first: restored when the test ends
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    done = cli("--engine", "podman", "build")
    assert done.exit_code == 3
    first, advice = done.stderr.strip().split("\n")
    assert first.startswith(f"no Podman API service answers at {PODMAN_ADDRESS} (Podman's own")
    assert advice.startswith("start it: `systemctl start podman.socket`, or `podman system")


def test_version_follows_the_spec_s_engine(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--version loads no project, but shows the engine a build would use."""

    def engine_line(*args: str) -> str:
        for name in ("DOCKER_HOST", "ROLECAST_ENGINE"):  # as a new shell has them (unset)
            monkeypatch.setenv(name, "")
            monkeypatch.delenv(name)
        return str(cli("-C", str(tmp_path), *args, "--version").stdout.splitlines()[-1])

    (tmp_path / "rolecast.yml").write_text("version: 1\ndefaults:\n  engine: podman\n")
    shown = engine_line()
    assert shown.startswith("podman engine ") and shown.endswith(f" at {PODMAN_ADDRESS}")
    assert engine_line("--engine", "docker").startswith("docker engine ")
    (tmp_path / "rolecast.yml").write_text("version: 1\ndefaults: [engine]\n")
    assert engine_line().startswith("docker engine ")


def test_is_podman_reads_the_components() -> None:
    assert is_podman(PODMAN_VERSION)
    assert not is_podman(DOCKER_VERSION)
    assert not is_podman({"Version": "1"})


def test_the_shim_is_written_once_per_address(tmp_path: Path) -> None:
    one = shim_directory("unix:///run/a.sock", cache=tmp_path)
    other = shim_directory("unix:///run/b.sock", cache=tmp_path)
    assert one != other
    shim = one / "docker"
    assert shim.stat().st_mode & stat.S_IXUSR
    assert shim.read_text() == shim_script("unix:///run/a.sock")
    written = shim.stat().st_mtime_ns
    assert shim_directory("unix:///run/a.sock", cache=tmp_path) == one
    assert shim.stat().st_mtime_ns == written  # the same content is not written again
    assert sorted(p.name for p in one.iterdir()) == ["docker"]


@pytest.fixture
def fake_podman(tmp_path: Path) -> Path:
    """A `podman` that prints its arguments, one a line; as commit, an id as Podman prints."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    podman = bin_dir / "podman"
    podman.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" >&2\n'
        'for a in "$@"; do [ "$a" = commit ] && printf "%064d\\n" 7; done\nexit 0\n'
    )
    podman.chmod(0o755)
    return bin_dir


def run_shim(tmp_path: Path, fake_podman: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shims = shim_directory("unix:///run/p.sock", cache=tmp_path / "cache")
    env = os.environ | {"PATH": f"{shims}{os.pathsep}{fake_podman}{os.pathsep}/usr/bin:/bin"}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=30, check=True
    )


def test_the_shim_runs_podman_on_the_engine_s_socket(tmp_path: Path, fake_podman: Path) -> None:
    done = run_shim(tmp_path, fake_podman, "exec", "-i", "c1", "/bin/sh", "-c", "echo a b")
    given = ["--remote", "--url", "unix:///run/p.sock", "exec", "-i", "c1", "/bin/sh"]
    assert done.stderr.splitlines() == [*given, "-c", "echo a b"]


def test_the_shim_copies_a_directory_and_commits_as_docker(
    tmp_path: Path, fake_podman: Path
) -> None:
    copied = run_shim(tmp_path, fake_podman, "cp", str(tmp_path), "c1:/usr/local/lib/x/")
    assert copied.stderr.splitlines()[3:] == ["cp", str(tmp_path), "c1:/usr/local/lib/x"]
    committed = run_shim(tmp_path, fake_podman, "commit", "--change", 'WORKDIR "/srv/a b"', "c1")
    assert committed.stdout == "sha256:" + "0" * 63 + "7\n"
    assert committed.stderr.splitlines()[3:] == ["commit", "--change", "WORKDIR /srv/a b", "c1"]


def test_copy_keeps_what_docker_and_podman_read_alike(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    assert copy_arguments([str(file), "c:/dir/"]) == [str(file), "c:/dir/"]
    assert copy_arguments([str(tmp_path), "c:/"]) == [str(tmp_path), "c:/"]
    assert copy_arguments(["c:/etc/", str(tmp_path)]) == ["c:/etc/", str(tmp_path)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('WORKDIR "/srv/app"', ["WORKDIR /srv/app"]),
        ('ENV NOTE="served by \\"app\\" here"', ['ENV NOTE="served by "app" here"']),
        ('LABEL "a.b"="1" c=two', ['LABEL a.b="1"', 'LABEL c="two"']),
        ('ENV G="to \\${USER} and \\$HOME \\\\o/"', ['ENV G="to ${USER} and $HOME \\o/"']),
        ('CMD ["/bin/echo", "a b"]', ['CMD ["/bin/echo", "a b"]']),
        ('ENTRYPOINT [""]', ["ENTRYPOINT []"]),
        ('ENTRYPOINT ["/init"]', ['ENTRYPOINT ["/init"]']),
        ("USER app", ["USER app"]),
        ("ENV OLD form", ["ENV OLD form"]),
        ('LABEL "unbalanced', ['LABEL "unbalanced']),
    ],
)
def test_changes_are_given_as_podman_reads_them(change: str, expected: list[str]) -> None:
    assert podman_changes(change) == expected


def test_every_form_of_change_is_translated() -> None:
    given = ["-c", 'WORKDIR "/a"', "--change=LABEL k=v", "--pause=false", "c1", "repo:tag"]
    assert commit_arguments(given) == [
        *("--change", "WORKDIR /a", "--change", 'LABEL k="v"'),
        *("--pause=false", "c1", "repo:tag"),
    ]
    assert commit_arguments(["--change"]) == ["--change"]


def test_the_image_id_is_printed_as_docker_prints_it() -> None:
    assert image_id("ab" * 32 + "\n") == "sha256:" + "ab" * 32
    assert image_id("sha256:" + "ab" * 32) == "sha256:" + "ab" * 32
    assert image_id("Error: no\n") == "Error: no"


def test_the_engine_s_path_comes_first_for_packer() -> None:
    env = packer_environment(None, ["/shim"])
    assert env["PATH"].split(os.pathsep)[0] == "/shim"
    assert packer_environment(None)["PATH"].split(os.pathsep)[0] != "/shim"


def test_the_service_s_containers_conf_runs_containers_here() -> None:
    conf = tomllib.loads((ROOT / "scripts" / "podman" / "containers.conf").read_text())
    assert conf["containers"]["default_ulimits"] == []
    assert conf["engine"] == {"cgroup_manager": "cgroupfs", "events_logger": "file"}


def test_engine_option_refuses_an_unknown_kind(cli: Any) -> None:
    result = cli("--engine", "lxc", "ls")
    assert result.exit_code == 2
    assert "--engine lxc: choose docker or podman" in result.output


def test_engine_podman_without_an_address_is_podman_s_own_socket(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DOCKER_HOST", "ROLECAST_ENGINE"):  # set first: restored when the test ends
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    result = cli("--engine", "podman", "--version")
    assert result.exit_code == 0
    assert os.environ["DOCKER_HOST"] == PODMAN_ADDRESS
    assert os.environ["ROLECAST_ENGINE"] == "podman"


def test_tags_are_the_names_rolecast_wrote() -> None:
    assert short_name("localhost/rolecast-cache/abc/web:1") == "rolecast-cache/abc/web:1"
    assert short_name("localhost:5000/example/web:1") == "localhost:5000/example/web:1"
    assert short_name("registry.example/localhost/x:1") == "registry.example/localhost/x:1"
    assert short_name("docker.io/library/debian:bookworm") == "debian:bookworm"
    assert short_name("docker.io/team/app:1") == "team/app:1"


def test_a_tag_without_a_registry_is_named_as_podman_s_commands_name_it() -> None:
    """Packer's and the stage commits' `podman commit` put `rolecast-test/x:1` under
    `localhost/`; a tag through the API would put it under `docker.io/`: two images under
    one short name."""
    assert local_name("rolecast-cache/abc/web:1") == "localhost/rolecast-cache/abc/web:1"
    assert local_name("web:latest") == "localhost/web:latest"
    assert local_name("localhost:5000/team/web:1") == "localhost:5000/team/web:1"
    assert local_name("ghcr.io/team/web:1") == "ghcr.io/team/web:1"
    assert local_name("docker.io/team/web:1") == "docker.io/team/web:1"
    assert local_name("localhost/web:1") == "localhost/web:1"


def test_the_spec_s_engine_is_used_unless_engine_is_given(
    cli: Any, project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = project_copy / "rolecast.yml"
    spec.write_text(spec.read_text().replace("defaults:\n", "defaults:\n  engine: podman\n", 1))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    monkeypatch.setenv("ROLECAST_ENGINE", "")
    monkeypatch.delenv("ROLECAST_ENGINE")
    result = cli("-C", str(project_copy), "plan")
    assert result.exit_code == 3
    assert "no Podman API service answers" in result.output
    result = cli("-C", str(project_copy), "--engine", "docker", "plan")
    assert result.exit_code == 3
    assert "no Docker engine answers" in result.output


def test_a_push_s_digest_is_read_from_podman_s_status_line() -> None:
    from orchestrator.engines.docker import _status_digest

    digest = "sha256:" + "c" * 64
    assert _status_digest({"status": f"latest: digest: {digest} size: 708"}) == digest
    assert _status_digest({"status": "The push refers to repository [x]"}) is None


def test_the_container_s_stop_signal_is_committed_as_docker_does() -> None:
    args = ["--change", 'CMD ["x"]', "-m", "msg", "c1", "repo:tag"]
    assert container_of(args) == "c1"
    assert container_of(["--pause=false"]) is None
    assert with_stop_signal(args, "3") == ["--change", "STOPSIGNAL 3", *args]
    assert with_stop_signal(args, "15") == args
    assert with_stop_signal(args, "") == args
    given = ["--change", "STOPSIGNAL SIGINT", "c1"]
    assert with_stop_signal(given, "3") == given


def test_a_registry_on_this_machine_is_plain_http_as_on_docker(podman_service: list[str]) -> None:
    engine = connect()
    assert isinstance(engine, PodmanEngine)
    assert engine.registry_insecure("localhost:5999")
    assert engine.registry_insecure("127.0.0.1:5000")
    assert not engine.registry_insecure("registry.example.invalid")


def write_auths(path: Path, auths: dict[str, str]) -> None:
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {k: {"auth": base64.b64encode(v.encode()).decode()} for k, v in auths.items()}
    path.write_text(json.dumps({"auths": encoded}))


def test_credentials_are_read_where_podman_keeps_them_then_docker_s(
    podman_service: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`podman login` (or `rolecast login` on Podman) writes Podman's auth file; Docker's
    config is read after it, as Podman's client does."""
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    assert auth_files() == [
        tmp_path / "run" / "containers" / "auth.json",
        tmp_path / "config" / "containers" / "auth.json",
    ]
    write_auths(auth_files()[0], {"lab.test:5000": "runner:pw-run"})
    write_auths(auth_files()[1], {"lab.test:5000": "conf:pw-conf", "ghcr.io/team": "g:pw-g"})
    write_auths(tmp_path / "docker" / "config.json", {"https://index.docker.io/v1/": "hub:pw"})
    engine = connect()
    assert engine.registry_auth("lab.test:5000") == {"username": "runner", "password": "pw-run"}
    assert engine.registry_auth("ghcr.io") == {"username": "g", "password": "pw-g"}
    assert engine.registry_auth("docker.io") == {"username": "hub", "password": "pw"}
    assert engine.registry_auth("other.test") is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "given.json"))
    assert auth_files() == [tmp_path / "given.json"]
    assert engine.registry_auth("lab.test:5000") is None


def test_login_runs_podman_with_the_password_on_stdin(
    podman_service: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rolecast login` on Podman is `podman login` on the engine's socket: the password
    through a pipe, plain HTTP for a registry on this machine only."""
    bin_dir, log = tmp_path / "bin", tmp_path / "podman.log"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {log}\ncat >> {log}\n')
    (bin_dir / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    engine = connect()
    engine.login("localhost:5999", "ci", "pw-not-in-argv")
    engine.login("registry.example.invalid", "ci", "pw-not-in-argv")
    address = os.environ["DOCKER_HOST"]
    local, remote = log.read_text().splitlines()
    flags = "|--username|ci|--password-stdin|pw-not-in-argv"
    assert local == f"--remote|--url|{address}|login|--tls-verify=false|localhost:5999{flags}"
    assert remote == f"--remote|--url|{address}|login|registry.example.invalid{flags}"
