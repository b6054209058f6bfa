"""The command line: exit codes, --version, ls, init."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator import __version__

from .conftest import ROOT


def test_version_lists_rolecast_and_every_tool(cli: Any) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"rolecast {__version__}"
    assert [line.split(" ")[0] for line in lines] == [
        "rolecast",
        "ansible-core",
        "mitogen",
        "packer",
        "packer-plugins",
        "docker",
    ]
    assert lines[4] == "packer-plugins docker and ansible built into packer"  # Packer 1.6.6
    import ansible.release

    assert lines[1] == f"ansible-core {ansible.release.__version__}"


def test_version_says_not_found_for_missing_tools(cli: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = cli("--version")
    assert result.exit_code == 0
    assert "packer not found" in result.stdout
    assert "docker engine not found" in result.stdout


def test_ls_lists_images_in_build_order(cli: Any) -> None:
    result = cli("ls")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["IMAGE", "FROM", "ROLES", "TAGS"]
    assert rows[1] == ["base", "debian-bookworm", "common", "localhost:5000/example/base:latest"]
    assert rows[2] == ["web@staging", "base", "nginx", "localhost:5000/example/web:latest-staging"]
    assert rows[3][0] == "web@production"


def test_ls_json(cli: Any) -> None:
    result = cli("ls", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [d["name"] for d in data] == ["base", "web@staging", "web@production", "app", "db"]
    app = data[3]
    assert app["from"] == "base"
    assert app["from_kind"] == "image"
    assert app["roles"] == ["app"]
    assert app["roles_applied"] == ["python_runtime", "app"]
    assert app["groups"] == ["appservers"]
    assert app["tags"] == ["localhost:5000/example/app:latest"]


def test_invalid_spec_fails_ls_too(cli: Any) -> None:
    result = cli("-f", "tests/data/invalid/unknown-key.yml", "ls")
    assert result.exit_code == 2
    assert "unknown key 'confg'" in result.stderr


def test_missing_directory_is_invalid_input(cli: Any) -> None:
    result = cli("-C", "/nonexistent/project", "validate")
    assert result.exit_code == 2
    assert "no such directory" in result.stderr


def test_unknown_command_is_invalid_input(cli: Any) -> None:
    assert cli("frobnicate").exit_code == 2


def test_init_writes_a_spec_that_validates(cli: Any, project_copy: Path) -> None:
    (project_copy / "rolecast.yml").unlink()
    result = cli("-C", str(project_copy), "init")
    assert result.exit_code == 0, result.stderr
    text = (project_copy / "rolecast.yml").read_text()
    assert "# roles found under roles/: app, common, nginx, postgres, python_runtime" in text
    # Roles that others pull in through meta dependencies are not listed twice.
    assert "      - app\n      - nginx\n" in text
    assert "# inventory: ansible.cfg's (./inventories/staging) is used" in text
    result = cli("-C", str(project_copy), "validate")
    assert result.exit_code == 0, result.stderr


def test_init_never_takes_group_vars_for_the_inventory(cli: Any, tmp_path: Path) -> None:
    """inventories/ holding one `hosts` file and its group_vars: the inventory is the file."""
    (tmp_path / "roles" / "motd" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "motd" / "tasks" / "main.yml").write_text("- ansible.builtin.ping:\n")
    (tmp_path / "inventories" / "group_vars").mkdir(parents=True)
    (tmp_path / "inventories" / "group_vars" / "all.yml").write_text("x: 1\n")
    (tmp_path / "inventories" / "hosts").write_text("[toolboxes]\nlocalhost\n")
    assert cli("-C", str(tmp_path), "init").exit_code == 0
    text = (tmp_path / "rolecast.yml").read_text()
    assert "inventory: inventories/hosts\n" in text
    assert cli("-C", str(tmp_path), "validate").exit_code == 0


def test_init_finds_roles_where_ansible_cfg_keeps_them(cli: Any, tmp_path: Path) -> None:
    """`roles_path = ./ansible/roles` and no roles/: init and validate find them, as
    ansible-playbook does."""
    (tmp_path / "ansible" / "roles" / "web" / "tasks").mkdir(parents=True)
    (tmp_path / "ansible" / "roles" / "web" / "tasks" / "main.yml").write_text(
        "- ansible.builtin.ping:\n"
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\nroles_path = ./ansible/roles\n")
    assert cli("-C", str(tmp_path), "init").exit_code == 0
    text = (tmp_path / "rolecast.yml").read_text()
    assert "    # roles found under ansible/roles/: web\n    roles:\n      - web\n" in text
    result = cli("-C", str(tmp_path), "validate")
    assert result.exit_code == 0, result.stderr


def test_init_in_a_playbook_repository_names_its_playbook(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "deploy.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"
    )
    assert cli("-C", str(tmp_path), "init").exit_code == 0
    assert "    playbook: playbooks/deploy.yml\n" in (tmp_path / "rolecast.yml").read_text()
    result = cli("-C", str(tmp_path), "validate")
    assert result.exit_code == 0, result.stderr


def test_init_refuses_to_overwrite(cli: Any, project_copy: Path) -> None:
    before = (project_copy / "rolecast.yml").read_text()
    result = cli("-C", str(project_copy), "init")
    assert result.exit_code == 2
    assert "already exists; pass --force" in result.stderr
    assert (project_copy / "rolecast.yml").read_text() == before
    assert cli("-C", str(project_copy), "init", "--force").exit_code == 0
    assert (project_copy / "rolecast.yml").read_text() != before


def test_init_needs_a_roles_directory(cli: Any, tmp_path: Path) -> None:
    result = cli("-C", str(tmp_path), "init")
    assert result.exit_code == 2
    assert "no roles/ directory" in result.stderr
    assert "nor playbooks/" in result.stderr


def test_bases_unknown_name(cli: Any) -> None:
    result = cli("bases", "ubuntu")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("unknown base ubuntu; bases in rolecast.yml: debian-bookworm")


def test_spec_file_relative_to_root(cli: Any) -> None:
    result = cli("-C", str(ROOT), "-f", "rolecast.yml", "validate")
    assert result.exit_code == 0


def test_build_without_packer_exits_3(cli: Any, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli("build", "--plain", "base")
    assert result.exit_code == 3
    assert result.stderr.strip().endswith(
        "packer is not installed: see README, Setup (Debian: apt-get install packer)"
    )


def test_build_without_an_engine_exits_3(cli: Any, monkeypatch: Any, tmp_path: Path) -> None:
    fake = tmp_path / "packer"
    fake.write_text("#!/bin/sh\necho 'Packer v1.6.6'\n")
    fake.chmod(0o755)
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    result = cli("build", "--plain", "base")
    assert result.exit_code == 3
    assert "no Docker engine answers" in result.stderr


def test_build_with_unresolvable_tag_template_exits_2(cli: Any, project_copy: Path) -> None:
    spec = project_copy / "rolecast.yml"
    spec.write_text(spec.read_text().replace("tags: [latest]", "tags: ['{{ version }}']"))
    result = cli("-C", str(project_copy), "build", "--plain")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "image base: tag template '{{ version }}': 'version' is undefined; pass --version"
    )


def test_build_unknown_image_exits_2(cli: Any) -> None:
    result = cli("build", "wbe")
    assert result.exit_code == 2
    assert "unknown image 'wbe' (did you mean 'web'?)" in result.stderr


def test_render_prints_a_template(cli: Any, project_copy: Path) -> None:
    result = cli("-C", str(project_copy), "render", "app")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    source = data["source"]["docker"]["app"]
    assert source["image"] == "localhost:5000/example/base:latest"
    assert (
        'CMD ["/opt/venv/bin/python", "/srv/app/app.py", "--config", "/etc/app/app.json"]'
        in source["changes"]
    )
    assert (project_copy / ".rolecast" / "build" / "app" / "playbook.yml").is_file()
    assert json.loads((project_copy / ".rolecast/build/app/vars.json").read_text()) == {
        "image_build": True
    }


def test_build_with_an_invalid_extra_tag_exits_2_before_any_work(
    cli: Any, monkeypatch: Any
) -> None:
    from orchestrator.build import preflight

    def no_tools() -> None:
        raise AssertionError("tools were checked before the tags")

    monkeypatch.setattr(preflight, "check_tools", no_tools)
    result = cli("build", "--plain", "--tag", "rc {{ version }}", "--version", "1.0.0")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "image base: tag template 'rc {{ version }}' gave 'rc 1.0.0', not a valid tag"
    )


def test_push_with_an_invalid_version_exits_2_before_looking_for_images(
    cli: Any, project_copy: Path, monkeypatch: Any
) -> None:
    from orchestrator import engines

    def engine_reached() -> None:
        raise AssertionError("the engine was asked before the tags were checked")

    monkeypatch.setattr(engines, "connect", lambda: engine_reached())
    spec = project_copy / "rolecast.yml"
    spec.write_text(spec.read_text().replace("tags: [latest]", "tags: ['{{ version }}']"))
    result = cli("-C", str(project_copy), "push", "--version", "1.0 beta", "base")
    assert result.exit_code == 2
    assert "gave '1.0 beta', not a valid tag" in result.stderr


@pytest.mark.parametrize("flag", ["--cache-from", "--cache-to"])
def test_build_with_an_invalid_cache_repository_exits_2(cli: Any, flag: str) -> None:
    result = cli("build", flag, "localhost:5000")
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(
        f"{flag}: 'localhost:5000' is not a registry repository"
    )


def test_docker_host_must_be_an_engine_address(cli: Any) -> None:
    result = cli("--docker-host", "buildhost:2375", "plan")
    assert result.exit_code == 2
    assert "--docker-host buildhost:2375: not an engine address" in result.stderr


def test_docker_host_from_the_environment_is_checked_as_minus_h_is(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "garbage")
    result = cli("plan")
    assert result.exit_code == 2
    assert result.stderr.startswith("DOCKER_HOST garbage: not an engine address; use ")
    monkeypatch.delenv("DOCKER_HOST")
    result = cli("-H", "tcp://127.0.0.1", "plan")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "--docker-host tcp://127.0.0.1: give its port (tcp://HOST:2376 with TLS, "
        "tcp://HOST:2375 without)"
    )


def _rolecast(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    """The installed command itself (its main() reorders arguments before typer parses)."""
    import os
    import subprocess
    import sys

    command = Path(sys.executable).parent / "rolecast"
    return subprocess.run(
        [str(command), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ) | (env or {}),
        timeout=120,
    )


def test_the_spec_is_found_upward_from_the_working_directory(
    cli: Any, project_copy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(project_copy / "roles" / "nginx" / "tasks")
    result = cli("ls", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)][0] == "base"
    history = cli("history", "--json")  # reads the found project's state
    assert history.exit_code == 0 and json.loads(history.stdout) == []
    nowhere = tmp_path / "empty" / "deeper"
    nowhere.mkdir(parents=True)
    monkeypatch.chdir(nowhere)
    missing = cli("ls")
    assert missing.exit_code == 2
    assert "rolecast.yml" in missing.stderr


def test_global_options_after_the_command(project_copy: Path, tmp_path: Path) -> None:
    production = str(project_copy / "inventories" / "production")
    done = _rolecast("ls", "--json", "-C", str(project_copy), "-i", production, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "web@production" in [r["name"] for r in json.loads(done.stdout)]
    nested = _rolecast("cache", "prune", "--dry-run", "--directory=/no/such/dir", cwd=tmp_path)
    assert nested.returncode == 2
    assert "-C /no/such/dir: no such directory" in nested.stderr


def test_hoisting_keeps_the_commands_own_options_values_and_double_dash() -> None:
    import typer

    from orchestrator.cli import app
    from orchestrator.cli.arguments import hoist_global_options

    group = typer.main.get_command(app)
    assert hoist_global_options(["build", "-C", "d", "web"], group) == ["-C", "d", "build", "web"]
    # build has a -v of its own; -e takes a value, even one that looks like an option.
    assert hoist_global_options(["build", "-v", "-e", "-C", "-fx.yml", "web"], group) == [
        "-fx.yml",
        "build",
        "-v",
        "-e",
        "-C",
        "web",
    ]
    assert hoist_global_options(["cache", "ls", "-v"], group) == ["-v", "cache", "ls"]
    assert hoist_global_options(["plan", "--", "-C"], group) == ["plan", "--", "-C"]
    assert hoist_global_options(["-C", "d", "ls"], group) == ["-C", "d", "ls"]


def test_options_from_rolecast_environment_variables(
    cli: Any, project_copy: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    runner = CliRunner()
    production = str(project_copy / "inventories" / "production")
    env = {"ROLECAST_DIRECTORY": str(project_copy), "ROLECAST_INVENTORY": production}
    listed = runner.invoke(app, ["ls", "--json"], env=env)
    assert listed.exit_code == 0, listed.stderr
    assert "web@production" in [r["name"] for r in json.loads(listed.stdout)]
    bad = runner.invoke(app, ["build"], env=env | {"ROLECAST_CONNECTION": "teleport"})
    assert bad.exit_code == 2
    assert "--connection teleport: use auto, mitogen, docker or proxy" in bad.stderr
    jobs = runner.invoke(app, ["build"], env=env | {"ROLECAST_JOBS": "0"})
    assert jobs.exit_code == 2
    assert "ROLECAST_JOBS" in _rolecast("build", "--help", cwd=tmp_path).stdout


def test_shell_completion_for_bash(tmp_path: Path) -> None:
    done = _rolecast("--show-completion", "bash", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "_ROLECAST_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _rolecast_completion rolecast" in done.stdout
    asking = {"_ROLECAST_COMPLETE": "complete_bash", "COMP_WORDS": "rolecast bui"}
    words = _rolecast(cwd=tmp_path, env=asking | {"COMP_CWORD": "1"})
    assert words.stdout.split() == ["build"]


def test_inventory_option_says_it_does_not_apply_to_variants(cli: Any) -> None:
    result = cli("-i", "inventories/production", "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "note: -i inventories/production does not apply to web: its variants name their own "
        "inventories (staging, production)"
    ]


def test_a_spec_file_elsewhere_without_directory_says_where_paths_are_read(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "ops"
    (project / "roles" / "web" / "tasks").mkdir(parents=True)
    (project / "roles" / "web" / "tasks" / "main.yml").write_text("- ansible.builtin.ping:\n")
    (project / "rolecast.yml").write_text(
        "version: 1\nimages:\n  web:\n    from: debian:12\n    roles: [web]\n"
    )
    monkeypatch.chdir(tmp_path)
    result = cli("-f", "ops/rolecast.yml", "validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"ops/rolecast.yml: paths in it are read from the project root, {tmp_path} (the "
        f"working directory); if its roles are beside it, give the root: -C {project}"
    )
    assert cli("-C", str(project), "validate").exit_code == 0


def test_image_arguments_complete_from_the_spec_found_upward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.cli.options import image_names

    from .conftest import ROOT

    monkeypatch.chdir(ROOT / "roles")
    assert image_names("w") == ["web", "web@staging", "web@production"]
    assert image_names("") == ["base", "web", "web@staging", "web@production", "app", "db"]


def test_a_directory_from_the_environment_is_named_by_its_variable(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLECAST_DIRECTORY", "/nonexistent/project")
    result = cli("validate")
    assert result.exit_code == 2
    assert result.stderr.strip() == "ROLECAST_DIRECTORY=/nonexistent/project: no such directory"


def test_plan_for_gitlab_ci_never_writes_an_extra_var_s_value(cli: Any) -> None:
    """The pipeline file would hold it: only `-e @FILE` passes (before any engine call)."""
    result = cli("plan", "--format", "gitlab-ci", "-e", "db_password=s3cret-value")
    assert result.exit_code == 2
    assert "s3cret-value" not in result.stderr + result.stdout
    assert "give -e @FILE" in result.stderr
    result = cli("plan", "--format", "gitlab-ci", "-e", '{"db_password": "s3cret-value"}')
    assert result.exit_code == 2 and "s3cret-value" not in result.stderr


def test_plan_in_other_formats_takes_extra_vars_with_values(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the pipeline file would hold them: a table or JSON plan takes -e KEY=VALUE."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = cli("plan", "--json", "-e", "db_password=s3cret-value")
    assert result.exit_code == 3, result.stderr  # past the flags: no engine answers
    assert "s3cret-value" not in result.stderr


def test_plan_s_build_job_flags_are_for_gitlab_ci_only(cli: Any) -> None:
    result = cli("plan", "--cache-to", "registry.test/team/cache")
    assert result.exit_code == 2
    assert "--cache-to is for --format gitlab-ci" in result.stderr


def test_plan_s_gitlab_include_must_be_a_file_of_the_repository(cli: Any) -> None:
    result = cli("plan", "--format", "gitlab-ci", "--gitlab-include", "ci/no-such-jobs.yml")
    assert result.exit_code == 2
    assert "--gitlab-include ci/no-such-jobs.yml: no such file here" in result.stderr
