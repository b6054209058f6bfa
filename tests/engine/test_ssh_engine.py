"""A build on an engine reached by ssh: `rolecast -H ssh://root@127.0.0.1:PORT build`.

The test runs an `sshd` of its own on 127.0.0.1, with a host key and a client key it makes;
its root reaches the local Docker socket, so the engine at the far end is this machine's.
The client finds the key and the host key where a user keeps them: `~/.ssh/config`
(IdentityFile) and `~/.ssh/known_hosts`, in a HOME of the test's (the SDK's paramiko reads
them there). OpenSSH reads the home of the passwd entry, not HOME: an `ssh` first on PATH
gives it the same config with `-F`, and writes down each call, which shows the docker CLI
(Packer's builder, the Ansible connection, the commits) went through ssh too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from .helpers import free_port, remove_images, rolecast, run_in

pytestmark = [pytest.mark.engine, pytest.mark.docker]

DEBIAN = "rolecast/debian-bookworm:bookworm"
IMAGE = "rolecast-test/ssh/remote:test"
PRIVSEP = Path("/run/sshd")  # sshd run as root chroots its pre-auth child here


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rolecast-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def descendants(pid: int) -> set[int]:
    """The processes under `pid`: the sshd's per-connection children and their sessions."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class SshEngine:
    """An sshd on 127.0.0.1:PORT that lets in root with the test's key, and the client side
    (a HOME with ~/.ssh, an `ssh` on PATH) that finds that key and the host's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.address = f"ssh://root@127.0.0.1:{self.port}"
        self.home = root / "home"
        self.calls = root / "ssh-calls.log"
        self.log = root / "sshd.log"
        self.config = root / "sshd_config"
        self.process: subprocess.Popen[str] | None = None
        self.made_privsep = False
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        ssh = shutil.which("ssh")
        if not os.access(sshd, os.X_OK) or ssh is None or os.geteuid() != 0:
            pytest.fail("an ssh engine needs sshd, ssh and root: run scripts/setup.sh as root")
        host_key = self.root / "host_key"
        host_public = keygen(host_key)
        (self.root / "authorized_keys").write_text(keygen(self.root / "client_key") + "\n")
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPidFile none\n"
            # the keys live under /tmp, which is world-writable
            "StrictModes no\n"
        )
        dot_ssh = self.home / ".ssh"
        dot_ssh.mkdir(parents=True, mode=0o700)
        (dot_ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_public}\n")
        (dot_ssh / "config").write_text(
            "Host 127.0.0.1\n"
            f"  IdentityFile {self.root / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {dot_ssh / 'known_hosts'}\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n  BatchMode yes\n"
        )
        bin_dir = self.root / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "ssh"
        wrapper.write_text(
            f'#!/bin/sh\necho "$*" >> "{self.calls}"\nexec "{ssh}" -F "{dot_ssh / "config"}" "$@"\n'
        )
        wrapper.chmod(0o755)
        if not PRIVSEP.is_dir():
            PRIVSEP.mkdir(mode=0o755)
            self.made_privsep = True
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(self.config)],
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        listening = threading.Event()
        assert self.process.stderr is not None
        self._reader = threading.Thread(
            target=self._copy_log, args=(self.process.stderr, listening), daemon=True
        )
        self._reader.start()
        # sshd says when it listens; it ends (and the log says why) when it cannot.
        while not listening.wait(1):
            assert self.process.poll() is None, self.log.read_text()

    def _copy_log(self, stream: IO[str], listening: threading.Event) -> None:
        with self.log.open("a") as log:
            for line in stream:
                log.write(line)
                log.flush()
                if line.startswith("Server listening on 127.0.0.1"):
                    listening.set()

    def env(self) -> dict[str, str]:
        """What `rolecast` runs with: the test's HOME and ssh; no agent, no DOCKER_HOST."""
        return {
            "HOME": str(self.home),
            "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
            "SSH_AUTH_SOCK": "",
            "DOCKER_HOST": "",
        }

    def logins(self) -> int:
        return self.log.read_text().count("Accepted publickey for root")

    def cli_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def stop(self) -> set[int]:
        """Stop sshd; returns the sessions that had not ended with their connections
        (stopped too)."""
        left: set[int] = set()
        if self.process is not None:
            # rolecast has exited: its connections are closing, and their sessions with them.
            deadline = time.monotonic() + 30
            while (left := descendants(self.process.pid)) and time.monotonic() < deadline:
                time.sleep(0.1)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
            if self._reader is not None:
                self._reader.join(30)
            self.process = None
        if self.made_privsep:
            PRIVSEP.rmdir()
        return left


@pytest.fixture(scope="module")
def ssh_engine(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshEngine]:
    root = tmp_path_factory.mktemp("ssh-engine")
    engine = SshEngine(root)
    try:
        engine.start()
        yield engine
    finally:
        left = engine.stop()
        shutil.rmtree(root)
    assert left == set(), "ssh sessions outlived their connections"


def write_project(project: Path, marker: str) -> None:
    (project / "roles" / "marker" / "tasks").mkdir(parents=True)
    (project / "roles" / "marker" / "tasks" / "main.yml").write_text(
        "---\n- name: Write the marker\n  ansible.builtin.copy:\n"
        '    content: "{{ marker }}\\n"\n    dest: /etc/ssh-marker\n    mode: "0644"\n'
    )
    # ansible.cfg is an input of every stage: this run's token keeps other runs' stages out.
    (project / "ansible.cfg").write_text(f"# run {marker}\n[defaults]\n")
    (project / "rolecast.yml").write_text(
        "version: 1\n"
        "defaults:\n  registry: rolecast-test/ssh\n  base: debian\n  tags: [test]\n"
        f"bases:\n  debian:\n    image: {DEBIAN}\n"
        "images:\n  remote:\n    roles: [marker]\n"
        f"    vars:\n      marker: {marker}\n"
        f"    labels:\n      io.rolecast.test.marker: {marker}\n"
        # the gate runs a command in a container of the image: the SDK's exec over ssh
        f"    verify:\n      commands: ['grep -qx {marker} /etc/ssh-marker']\n"
    )


def test_a_build_on_an_engine_reached_by_ssh(
    ssh_engine: SshEngine, docker_engine: Any, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    project = tmp_path / "project"
    write_project(project, marker)
    on_ssh = ("-H", ssh_engine.address)
    env = ssh_engine.env()
    try:
        version = rolecast(*on_ssh, "--version", env=env)
        assert version.returncode == 0, version.stderr
        server = docker_engine.version()["Version"]
        assert version.stdout.splitlines()[-1] == f"docker engine {server} at {ssh_engine.address}"

        done = rolecast(*on_ssh, "build", "--plain", "--json", "remote", cwd=project, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        result = json.loads(done.stdout)["images"][0]
        assert result["result"] == "built"
        assert "verify: passed" in result["notes"]

        # The engine behind sshd is this machine's: the image is there, as built.
        image = docker_engine.images.get(IMAGE)
        assert image.id == result["image_id"]
        assert image.labels["io.rolecast.test.marker"] == marker
        assert run_in(docker_engine, IMAGE, "cat", "/etc/ssh-marker") == f"{marker}\n"

        # The docker CLI (Packer, the connection, the commits) logged in through the ssh
        # on PATH; the SDK (paramiko) logged in by itself: more logins than ssh calls.
        calls = ssh_engine.cli_calls()
        assert calls and all(c.endswith("docker system dial-stdio") for c in calls), calls
        assert ssh_engine.logins() > len(calls)
    finally:
        listed = rolecast(*on_ssh, "cache", "ls", "--json", cwd=project, env=env)
        stages = [s["reference"] for s in json.loads(listed.stdout or "[]")]
        remove_images(docker_engine, *stages, IMAGE)
        rolecast(*on_ssh, "cache", "prune", "--volumes", cwd=project, env=env)
