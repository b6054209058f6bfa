"""Real builds through Packer and Docker, inspected from the outside."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import ROOT
from .helpers import (
    EDGE,
    ROLECAST,
    build_json,
    copy_project,
    engine_kind,
    remove_images,
    rolecast,
    run_in,
    serve,
    signal_name,
    vault_encrypt,
)

pytestmark = pytest.mark.engine

REGISTRY = "localhost:5000/example"


@pytest.fixture(scope="module")
def example_build(docker_engine: Any) -> dict[str, Any]:
    """The example project built once, as the demo builds it (forced: never from state)."""
    done, data = build_json("--no-cache", cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return data


def test_every_example_image_is_built_and_tagged(
    example_build: dict[str, Any], docker_engine: Any
) -> None:
    results = {i["name"]: i for i in example_build["images"]}
    assert list(results) == ["base", "web@staging", "web@production", "app", "db"]
    for name, item in results.items():
        repository, _, variant = name.partition("@")
        tag = f"latest-{variant}" if variant else "latest"
        assert item["result"] == "built"
        assert item["tags"] == [f"{REGISTRY}/{repository}:{tag}"]
        assert docker_engine.images.get(item["tags"][0]).id == item["image_id"]
        assert item["connection"] == "mitogen"
    # The gates of rolecast.yml ran before the tags moved.
    assert "idempotence: no task changed on a second run" in results["app"]["notes"]
    assert "verify: passed" in results["app"]["notes"]
    assert "verify: passed" in results["web@production"]["notes"]
    # The database role ran its server during the build; the image's PID 1 runs it.
    assert "verify: passed" in results["db"]["notes"]
    assert any(
        "postgresql@15-main.service (running, stopped cleanly)" in n for n in results["db"]["notes"]
    )
    assert 0 < len(example_build["slowest_tasks"]) <= 5
    slowest = example_build["slowest_tasks"]
    assert slowest == sorted(slowest, key=lambda t: -t["seconds"])


def test_web_image_config_and_response(example_build: dict[str, Any], docker_engine: Any) -> None:
    image = docker_engine.images.get(f"{REGISTRY}/web:latest-staging")
    config = image.attrs["Config"]
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert config["Entrypoint"] is None
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert signal_name(config["StopSignal"]) == "SIGQUIT"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "web"
    assert labels["org.opencontainers.image.vendor"] == "Example Ops"
    assert labels["io.rolecast.roles"] == "common,nginx"
    assert labels["io.rolecast.variant"] == "staging"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    # The staging inventory's group_vars reached the role.
    conf = run_in(docker_engine, image.id, "cat", "/etc/nginx/nginx.conf")
    assert "worker_processes 2;" in conf
    assert "Example site (staging)" in serve(docker_engine, image.id, "80/tcp")


def test_app_image_config_and_response(example_build: dict[str, Any], docker_engine: Any) -> None:
    image = docker_engine.images.get(f"{REGISTRY}/app:latest")
    config = image.attrs["Config"]
    assert config["User"] == "app"
    assert config["WorkingDir"] == "/srv/app"
    assert config["Cmd"] == [
        "/opt/venv/bin/python",
        "/srv/app/app.py",
        "--config",
        "/etc/app/app.json",
    ]
    assert 'APP_GREETING_NOTE=served by "app" in a container' in config["Env"]
    assert "PYTHONUNBUFFERED=1" in config["Env"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Labels"]["com.example.team"] == "platform"
    body = serve(docker_engine, image.id, "8080/tcp")
    assert json.loads(body) == {"greeting": "hello from staging", "environment": "staging"}


def test_nothing_of_the_build_is_left_in_the_images(
    example_build: dict[str, Any], docker_engine: Any
) -> None:
    for name in ("base:latest", "web:latest-staging", "web:latest-production", "app:latest"):
        image = f"{REGISTRY}/{name}"
        check = (
            "test ! -e /packer-files"
            ' && test -z "$(find /mnt /tmp /var/tmp -mindepth 1)"'
            " && test ! -e /root/.ansible && test ! -e /srv/app/.ansible"
            " && ! ls -d /tmp/.ansible* /root/.ansible* 2>/dev/null"
            " && test -z \"$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v '^partial$' || true)\""
            " && ! dpkg -s python3-apt >/dev/null 2>&1"
            " && echo clean"
        )
        assert run_in(docker_engine, image, "sh", "-c", check, user="root") == "clean\n", name
    history = docker_engine.images.get(f"{REGISTRY}/app:latest").history()
    assert not [h for h in history if "playbook" in (h.get("CreatedBy") or "")]


def test_no_build_container_survives(example_build: dict[str, Any], docker_engine: Any) -> None:
    assert docker_engine.containers.list(all=True, filters={"label": "io.rolecast.build"}) == []


def test_variants_differ_exactly_in_their_inventory_values(
    example_build: dict[str, Any], docker_engine: Any
) -> None:
    def files(tag: str) -> dict[str, set[str]]:
        image = f"{REGISTRY}/web:{tag}"
        return {
            path: set(run_in(docker_engine, image, "cat", path).splitlines())
            for path in ("/etc/nginx/nginx.conf", "/var/www/site/index.html")
        }

    staging, production = files("latest-staging"), files("latest-production")
    conf = "/etc/nginx/nginx.conf"
    assert staging[conf] - production[conf] == {
        "worker_processes 2;",
        "    worker_connections 512;",
    }
    assert production[conf] - staging[conf] == {
        "worker_processes 4;",
        "    worker_connections 2048;",
    }
    page = "/var/www/site/index.html"
    assert staging[page] - production[page] == {
        "<head><title>Example site (staging)</title></head>",
        "<h1>Example site (staging)</h1>",
        "<p>environment: staging</p>",
    }
    assert production[page] - staging[page] == {
        "<head><title>Example site</title></head>",
        "<h1>Example site</h1>",
        "<p>environment: production</p>",
    }


@pytest.fixture
def edge(tmp_path: Path, docker_engine: Any) -> Iterator[Path]:
    """A private copy of the edge project. Its ansible.cfg, an input of every stage, holds
    a token of this test's: no stage of another test or an earlier run is reused."""
    project = copy_project(EDGE, tmp_path / "edge")
    (project / "ansible.cfg").write_text(f"# test {uuid.uuid4().hex}\n[defaults]\n")
    yield project
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout or "[]")
    remove_images(docker_engine, *[s["reference"] for s in stages])


def test_env_and_labels_survive_exactly(edge: Path, docker_engine: Any) -> None:
    remove_images(docker_engine, "rolecast-test/quoting:test")
    done, _ = build_json("quoting", cwd=edge)
    assert done.returncode == 0, done.stderr[-2000:]
    image = docker_engine.images.get("rolecast-test/quoting:test")
    config = image.attrs["Config"]
    assert 'GREETING=say "hi" to ${USER} and $HOME, ☃ \\o/' in config["Env"]
    assert config["Labels"]["note"] == "${literal}"
    assert config["Labels"]["quotes"] == 'it\'s "quoted"'
    inside = run_in(docker_engine, image.id, "sh", "-c", 'printf "%s\\n" "$GREETING"')
    assert inside == 'say "hi" to ${USER} and $HOME, ☃ \\o/\n'
    out = docker_engine.containers.run(image.id, remove=True, network_disabled=True)
    assert out == b"marker written by ansible, image_build=True\n"


def test_failing_role_names_the_task_and_moves_no_tag(edge: Path, docker_engine: Any) -> None:
    base = docker_engine.images.get("rolecast/debian-bookworm:bookworm")
    base.tag("rolecast-test/broken", "test")
    remove_images(docker_engine, "rolecast-test/broken:fresh")
    done = subprocess.run(
        [ROLECAST, "build", "--plain", "broken"], cwd=edge, capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    # The task's file and line, relative to the project (the role's line 2).
    assert last.startswith(
        "image broken: role broken_task, task 'Fail on purpose' failed at "
        "roles/broken_task/tasks/main.yml:2: this role fails on purpose; log: "
    )
    log = edge / last.rsplit("log: ", 1)[1]
    assert "Fail on purpose" in log.read_text()
    # The tag that existed keeps its image; the new one was never made.
    assert docker_engine.images.get("rolecast-test/broken:test").id == base.id
    assert not docker_engine.images.list(name="rolecast-test/broken:fresh")
    assert (
        docker_engine.containers.list(all=True, filters={"label": "io.rolecast.image=broken"}) == []
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_build_leaves_no_container_and_no_tag(
    edge: Path, docker_engine: Any, stop: signal.Signals
) -> None:
    remove_images(docker_engine, "rolecast-test/slow:test")
    proc = subprocess.Popen(
        [ROLECAST, "build", "--plain", "slow"],
        cwd=edge,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Sleep for a long while" in line:
            break
    else:
        proc.wait()
        pytest.fail("the build ended before its slow task:\n" + "".join(seen))
    running = docker_engine.containers.list(filters={"label": "io.rolecast.image=slow"})
    assert len(running) == 1
    proc.send_signal(stop)
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 130
    assert "interrupted" in rest
    assert (
        docker_engine.containers.list(all=True, filters={"label": "io.rolecast.image=slow"}) == []
    )
    assert not docker_engine.images.list(name="rolecast-test/slow")


def test_rendered_template_passes_packer_validate(tmp_path: Path, docker_engine: Any) -> None:
    project = copy_project(ROOT, tmp_path / "example")
    out = tmp_path / "web.pkr.json"
    done = rolecast("render", "web@staging", "-o", str(out), cwd=project)
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        ["packer", "validate", str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_packer_template_error_exits_1_with_packers_line(
    edge: Path, docker_engine: Any, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    from orchestrator import render

    original = render.template

    def broken(inp: Any) -> Any:
        data = original(inp)
        data["source"]["docker"][inp.name]["no_such_option"] = True
        return data

    monkeypatch.setattr(render, "template", broken)
    result = cli("-C", str(edge), "build", "--plain", "quoting")
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("image quoting: packer: ")
    assert message.startswith(
        "image quoting: packer: Error: Extraneous JSON object property; on template.pkr.json line "
    )
    assert 'No argument or block type is named "no_such_option"' in message
    assert (
        docker_engine.containers.list(all=True, filters={"label": "io.rolecast.image=quoting"})
        == []
    )


def test_missing_unpullable_base_exits_1_naming_it(tmp_path: Path, docker_engine: Any) -> None:
    project = tmp_path / "p"
    (project / "roles").mkdir(parents=True)
    (project / "rolecast.yml").write_text(
        "version: 1\nimages:\n  x:\n    from: rolecast-test/no-such-base:1\n"
    )
    done = rolecast("build", "--plain", cwd=project)
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "image x: base image rolecast-test/no-such-base:1 is not present and cannot be pulled"
        )
    )


def test_inventory_host_and_vaulted_variable(
    edge: Path, tmp_path: Path, docker_engine: Any
) -> None:
    import secrets as random_secrets

    secret = f"vaulted-{random_secrets.token_hex(8)}"
    password = tmp_path / "vault-password"
    password.write_text(f"pw-{random_secrets.token_hex(8)}\n")
    vault_file = edge / "inventory" / "group_vars" / "all" / "vault.yml"
    vault_file.write_text(f"---\nvault_secret: {secret}\n")
    vault_encrypt(vault_file, password)
    assert secret not in vault_file.read_text()

    without = rolecast("build", "--plain", "hosted", cwd=edge)
    assert without.returncode == 2  # named before any work, not by Ansible mid-build
    assert without.stderr.splitlines() == [
        "inventory/group_vars/all/vault.yml:1:1: encrypted with Ansible Vault, and no vault "
        "password given: pass --vault-password-file FILE or --vault-id LABEL@FILE (or set "
        "vault_password_file in ansible.cfg)"
    ]

    remove_images(docker_engine, "rolecast-test/hosted:test")
    built = rolecast("build", "--plain", "hosted", "--vault-password-file", str(password), cwd=edge)
    assert built.returncode == 0, built.stderr[-2000:]
    probe = run_in(docker_engine, "rolecast-test/hosted:test", "cat", "/etc/probe", user="root")
    assert probe.splitlines() == [
        "group=from-group",
        "host=from-host",
        "site=edge",
        f"secret={secret}",
        f"virtualization={engine_kind()}",  # what Ansible's facts find in the container
        "hostname=app7.example.internal",
    ]
    # The secret reached the role, and nothing else.
    leaks = [
        str(path)
        for path in (edge / ".rolecast").rglob("*")
        if path.is_file() and secret in path.read_text(errors="replace")
    ]
    assert leaks == []
    assert secret not in built.stdout + built.stderr
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "rolecast-test/hosted:test"],
        capture_output=True,
        text=True,
    )
    assert secret not in history.stdout
    image = docker_engine.images.get("rolecast-test/hosted:test")
    assert secret not in json.dumps(image.attrs["Config"])


def test_failed_verify_blocks_the_tag(edge: Path, docker_engine: Any) -> None:
    remove_images(
        docker_engine, "rolecast-test/verify-fails:test", "rolecast-test/verify-fails:test-failed"
    )
    # --push: a failed gate pushes nothing (no push is even attempted).
    done = rolecast("build", "--plain", "--push", "verify-fails", cwd=edge)
    assert done.returncode == 1
    assert "pushing" not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "image verify-fails: verify failed: task 'The marker names the wrong tool' "
        "(playbooks/verify-wrong.yml:11): the marker does not name chef; no tag was moved; "
        "the image is kept as rolecast-test/verify-fails:test-failed"
    )
    assert not docker_engine.images.list(name="rolecast-test/verify-fails:test")
    assert docker_engine.images.list(name="rolecast-test/verify-fails:test-failed")
    assert not docker_engine.images.list(name="rolecast-candidate/*")
    assert docker_engine.containers.list(all=True, filters={"label": "io.rolecast.build"}) == []
    assert not list((edge / ".rolecast" / "candidates").glob("*"))  # nothing left to look for


def test_passing_verify_moves_the_tags(edge: Path, docker_engine: Any) -> None:
    remove_images(docker_engine, "rolecast-test/verified:test")
    done, data = build_json("verified", cwd=edge)
    assert done.returncode == 0, done.stderr[-2000:]
    (item,) = data["images"]
    assert "verify: passed" in item["notes"]
    assert docker_engine.images.get("rolecast-test/verified:test").id == item["image_id"]
    assert not docker_engine.images.list(name="rolecast-candidate/*")
    assert not list((edge / ".rolecast" / "candidates").glob("*"))


def test_non_idempotent_role_fails_the_idempotence_gate(edge: Path, docker_engine: Any) -> None:
    remove_images(docker_engine, "rolecast-test/nonidem:test")
    done = rolecast("build", "--plain", "--idempotence", "nonidem", cwd=edge)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "image nonidem: not idempotent: 1 task(s) changed on a second run: role nonidem, "
        "task 'Append a line on every run' (roles/nonidem/tasks/main.yml:8); no tag was "
        "moved; the image is kept as rolecast-test/nonidem:test-failed"
    )
    assert not docker_engine.images.list(name="rolecast-test/nonidem:test")
    # Again: the build resumes from the cached stage and runs no role, but the gate still
    # applies every role a second time and fails the same way.
    again = rolecast("build", "--plain", "--idempotence", "nonidem", cwd=edge)
    assert again.returncode == 1
    assert "cache: reusing image, role nonidem" in again.stdout
    assert "not idempotent: 1 task(s) changed" in again.stderr
    # Without the gate the same role builds: the gate, not the role, failed the build.
    assert rolecast("build", "--plain", "nonidem", cwd=edge).returncode == 0


VM_CHECK = (
    # enabled where Debian records it: sysv links, and the unit's [Install] link
    "test -L /etc/rc2.d/S01cron"
    " && test -L /etc/systemd/system/multi-user.target.wants/hello.service"
    # the build-time stand-ins are gone
    " && test ! -e /usr/local/sbin/sudo && ! command -v sudo"
    " && test ! -e /usr/local/sbin/systemctl && test ! -e /usr/sbin/systemctl"
    " && test ! -e /usr/sbin/policy-rc.d && test ! -e /run/systemd/system"
    " && echo ok"
)


def test_a_role_written_for_vms_builds_unedited(edge: Path, docker_engine: Any) -> None:
    remove_images(docker_engine, "rolecast-test/vm-run:test")
    done, data = build_json("--idempotence", "vm-run", cwd=edge)
    assert done.returncode == 0, done.stderr[-3000:]
    (item,) = data["images"]
    # cron and the hello unit really ran, and were stopped before the commit.
    started = [n for n in item["notes"] if n.startswith("services started during the play")]
    assert started == [
        "services started during the play: cron.service (running, stopped cleanly), "
        "hello.service (running, stopped cleanly)"
    ]
    assert "idempotence: no task changed on a second run" in item["notes"]
    assert run_in(docker_engine, "rolecast-test/vm-run:test", "sh", "-c", VM_CHECK) == "ok\n"


def test_services_skip_records_starts_and_skips_them(edge: Path, docker_engine: Any) -> None:
    remove_images(docker_engine, "rolecast-test/vm:test")
    done, data = build_json("--idempotence", "vm", cwd=edge)
    assert done.returncode == 0, done.stderr[-3000:]
    (item,) = data["images"]
    assert any(n.startswith("warning: service start/restart skipped") for n in item["notes"])
    assert not any(n.startswith("services started during the play") for n in item["notes"])
    assert "idempotence: no task changed on a second run" in item["notes"]
    assert run_in(docker_engine, "rolecast-test/vm:test", "sh", "-c", VM_CHECK) == "ok\n"


def make_role(path: Path, content: str) -> None:
    (path / "meta").mkdir(parents=True, exist_ok=True)
    (path / "meta" / "main.yml").write_text("galaxy_info: {author: t, license: MIT}\n")
    (path / "tasks").mkdir(parents=True, exist_ok=True)
    (path / "tasks" / "main.yml").write_text(
        "---\n- name: Write where it came from\n  ansible.builtin.copy:\n"
        f'    content: "{content}\\n"\n    dest: /etc/{path.name}\n    mode: "0644"\n'
    )


def test_requirements_from_a_tarball_and_a_git_repository(
    tmp_path: Path, docker_engine: Any
) -> None:
    sources = tmp_path / "sources"
    make_role(sources / "tarrole", "tar v1")
    subprocess.run(
        ["tar", "-C", str(sources), "-czf", str(sources / "tarrole.tar.gz"), "tarrole"],
        check=True,
    )
    repo = sources / "gitrole"
    make_role(repo, "git v1")
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)

    project = tmp_path / "project"
    (project / "roles").mkdir(parents=True)
    requirements = project / "requirements.yml"

    def require(version: str) -> None:
        requirements.write_text(
            "---\nroles:\n"
            f"  - name: tarrole\n    src: file://{sources / 'tarrole.tar.gz'}\n"
            f"  - name: gitrole\n    src: git+file://{repo}\n    version: {version}\n"
        )

    require("v1")
    (project / "rolecast.yml").write_text(
        "version: 1\nrequirements: requirements.yml\n"
        "images:\n  req:\n    from: rolecast/debian-bookworm:bookworm\n"
        "    name: rolecast-test/req\n    tags: [test]\n    roles: [tarrole, gitrole]\n"
    )
    assert rolecast("validate", cwd=project).returncode == 0
    done = rolecast("build", "--plain", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    inside = "cat /etc/tarrole /etc/gitrole"
    assert run_in(docker_engine, "rolecast-test/req:test", "sh", "-c", inside) == "tar v1\ngit v1\n"
    labels = docker_engine.images.get("rolecast-test/req:test").labels
    assert labels["io.rolecast.requirements"] == "gitrole=v1,tarrole=unversioned"

    make_role(repo, "git v2")
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    subprocess.run([*git, "tag", "v2"], check=True)
    require("v2")
    done = rolecast("build", "--plain", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert run_in(docker_engine, "rolecast-test/req:test", "sh", "-c", inside) == "tar v1\ngit v2\n"
    resolved = json.loads((project / ".rolecast" / "galaxy" / "resolved.json").read_text())
    assert resolved == {"gitrole": "v2", "tarrole": "unversioned"}


def test_requirements_install_a_collection_whose_role_an_image_uses(
    tmp_path: Path, docker_engine: Any
) -> None:
    source = tmp_path / "collection"
    (source / "roles" / "hello" / "tasks").mkdir(parents=True)
    (source / "galaxy.yml").write_text(
        "namespace: rolecasttest\nname: demo\nversion: 1.2.0\nreadme: README.md\nauthors: [tests]\n"
    )
    (source / "README.md").write_text("A collection the test builds.\n")
    (source / "roles" / "hello" / "tasks" / "main.yml").write_text(
        "---\n- name: Say hello from the collection\n  ansible.builtin.copy:\n"
        '    content: "from the collection\\n"\n    dest: /etc/hello\n    mode: "0644"\n'
    )
    galaxy = str(Path(ROLECAST).parent / "ansible-galaxy")
    built = subprocess.run(
        [galaxy, "collection", "build", str(source), "--output-path", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    tarball = tmp_path / "rolecasttest-demo-1.2.0.tar.gz"
    project = tmp_path / "project"
    (project / "roles").mkdir(parents=True)
    (project / "requirements.yml").write_text(
        f"---\ncollections:\n  - name: {tarball}\n    type: file\n"
    )
    (project / "rolecast.yml").write_text(
        "version: 1\nrequirements: requirements.yml\n"
        "images:\n  coll:\n    from: rolecast/debian-bookworm:bookworm\n"
        "    name: rolecast-test/coll\n    tags: [test]\n    roles: [rolecasttest.demo.hello]\n"
    )
    done = rolecast("build", "--plain", cwd=project)
    assert done.returncode == 0, done.stderr[-2000:]
    assert run_in(docker_engine, "rolecast-test/coll:test", "cat", "/etc/hello") == (
        "from the collection\n"
    )
    labels = docker_engine.images.get("rolecast-test/coll:test").labels
    assert labels["io.rolecast.requirements"] == "rolecasttest.demo=1.2.0"


def test_a_second_build_with_nothing_changed_starts_no_container(
    example_build: dict[str, Any], docker_engine: Any
) -> None:
    import time

    started_ns = time.time_ns()
    done, data = build_json(cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    until = int(time.time()) + 1
    assert [i["result"] for i in data["images"]] == ["fresh"] * 5
    assert [i["image_id"] for i in data["images"]] == [
        i["image_id"] for i in example_build["images"]
    ]
    events = docker_engine.events(
        since=started_ns // 1_000_000_000,
        until=until,
        decode=True,
        filters={"type": "container", "event": "create"},
    )
    # Events have one-second bounds: drop what came before this build began.
    assert [e for e in events if e["timeNano"] >= started_ns] == []


def test_plan_names_the_file_that_changed(edge: Path, docker_engine: Any) -> None:
    done = rolecast("build", "--plain", "quoting", cwd=edge)
    assert done.returncode == 0, done.stderr[-2000:]
    plan = json.loads(rolecast("plan", "--json", "quoting", cwd=edge).stdout)
    assert [(p["name"], p["status"]) for p in plan] == [("quoting", "fresh")]
    built_id = plan[0]["image_id"]
    labels = docker_engine.images.get(built_id).labels
    assert labels["io.rolecast.fingerprint"] == plan[0]["fingerprint"]

    task = edge / "roles" / "marker" / "tasks" / "main.yml"
    task.write_text(task.read_text().replace("marker written", "marker rewritten"))
    (stale,) = json.loads(rolecast("plan", "--json", "quoting", cwd=edge).stdout)
    assert stale["status"] == "stale"
    assert stale["reason"] == "roles/marker/tasks/main.yml changed"
    assert stale["first_stage"] == "role marker"

    # A variable no role of the image reads changes nothing (the variable rule).
    inventory = edge / "inventory" / "group_vars" / "all" / "plain.yml"
    inventory.write_text(inventory.read_text() + "extra: 1\n")
    (stale,) = json.loads(rolecast("plan", "--json", "quoting", cwd=edge).stdout)
    assert stale["reason"] == "roles/marker/tasks/main.yml changed"

    done = rolecast("build", "--plain", "quoting", cwd=edge)
    assert done.returncode == 0, done.stderr[-2000:]
    (fresh,) = json.loads(rolecast("plan", "--json", "quoting", cwd=edge).stdout)
    assert fresh["status"] == "fresh"
    assert fresh["image_id"] != built_id


def test_plan_writes_the_example_fleet_as_a_gitlab_child_pipeline(
    project_copy: Path, docker_engine: Any
) -> None:
    """Images the engine lacks (a registry no test builds into): every one gets a job,
    after its parent's job, and the file keeps GitLab's rules."""
    from orchestrator.project import load_project

    from ..test_graph import gitlab_jobs

    spec = project_copy / "rolecast.yml"
    unique = f"localhost:5000/pipeline-{uuid.uuid4().hex[:8]}"
    spec.write_text(spec.read_text().replace("localhost:5000/example", unique))
    done = rolecast(
        "plan", "--format", "gitlab-ci", "--cache-to", f"{unique}/cache", cwd=project_copy
    )
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = gitlab_jobs(yaml.safe_load(done.stdout))
    project = load_project(project_copy)
    assert sorted(jobs) == sorted(f"build {name}" for name in project.images)
    for name, image in project.images.items():
        parent = [f"build {image.parent}"] if image.parent_kind == "image" else []
        assert jobs[f"build {name}"]["needs"] == parent
    assert f"--cache-to {unique}/cache" in jobs["build base"]["script"][0]
