"""The phases of one build, each on its own with a fake engine: parents and bases, the
connection, labels, the play, failure messages, tags checked before any tool."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pytest

from orchestrator.build import inputs, parents
from orchestrator.build.context import BuildOptions, Context
from orchestrator.build.inputs import choose_connection, labels, play_items
from orchestrator.build.packer import failure_message
from orchestrator.errors import BuildFailedError, ToolMissingError
from orchestrator.fingerprint import Manifest, Stage
from orchestrator.packer_output import BuildState, Failure
from orchestrator.project import Project, load_project
from orchestrator.render import StageCommit
from orchestrator.tags import TagRules, git_info

from .conftest import ROOT
from .fakes import FakeEngine


def context(engine: FakeEngine, project: Project | None = None) -> Context:
    rules = TagRules(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return Context(project or load_project(ROOT), BuildOptions(), engine, lambda e: None, rules)


def test_a_base_is_made_once_for_all_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def fake_make_base(engine: FakeEngine, name: str, *args: Any, **kwargs: Any) -> str:
        made.append(name)
        engine.add_image("rolecast/debian-bookworm:bookworm")
        return "made"

    monkeypatch.setattr(parents, "make_base", fake_make_base)
    ctx = context(FakeEngine())
    image = ctx.project.images["base"]
    first = parents.ensure_parent(ctx, image, None)
    second = parents.ensure_parent(ctx, image, None)
    assert first.reference == second.reference == "rolecast/debian-bookworm:bookworm"
    assert made == ["debian-bookworm"]


def test_a_missing_parent_image_of_the_file_says_to_build_it() -> None:
    ctx = context(FakeEngine())
    with pytest.raises(BuildFailedError) as info:
        parents.ensure_parent(ctx, ctx.project.images["app"], None)
    assert str(info.value) == (
        "image app: its parent localhost:5000/example/base:latest does not exist; "
        "build base first (rolecast build base)"
    )


def test_an_unpullable_external_parent_is_named(tmp_path: Path) -> None:
    (tmp_path / "rolecast.yml").write_text(
        "version: 1\nimages:\n  x:\n    from: nowhere/nothing:1\n"
    )
    (tmp_path / "roles").mkdir()
    ctx = context(FakeEngine(), load_project(tmp_path))
    with pytest.raises(BuildFailedError) as info:
        parents.ensure_parent(ctx, ctx.project.images["x"], None)
    assert str(info.value).startswith(
        "image x: base image nowhere/nothing:1 is not present and cannot be pulled "
        "(repository does not exist)"
    )


def test_a_pulled_parent_gives_its_config_to_the_commit(tmp_path: Path) -> None:
    (tmp_path / "rolecast.yml").write_text("version: 1\nimages:\n  x:\n    from: there/one:1\n")
    (tmp_path / "roles").mkdir()
    engine = FakeEngine(pullable={"there/one:1"})
    ctx = context(engine, load_project(tmp_path))
    parent = parents.ensure_parent(ctx, ctx.project.images["x"], None)
    assert ("pull", "there/one:1") in engine.calls
    assert parent.reference == "there/one:1" and parent.id.startswith("sha256:")


def test_auto_connection_prefers_mitogen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "mitogen_strategy_dir", lambda: Path("/m"))
    monkeypatch.setattr(inputs, "community_docker_installed", lambda: True)
    assert choose_connection("auto") == ("mitogen", Path("/m"))
    monkeypatch.setattr(inputs, "mitogen_strategy_dir", lambda: None)
    assert choose_connection("auto") == ("docker", None)
    monkeypatch.setattr(inputs, "community_docker_installed", lambda: False)
    assert choose_connection("auto") == ("proxy", None)
    with pytest.raises(ToolMissingError, match="community.docker collection is not installed"):
        choose_connection("docker")
    with pytest.raises(ToolMissingError, match="mitogen is not installed"):
        choose_connection("mitogen")


def test_failure_message_prefers_the_failed_task_then_packers_own_line(tmp_path: Path) -> None:
    ctx = context(FakeEngine())
    image = ctx.project.images["web@staging"]
    log = tmp_path / "web.log"
    state = BuildState(
        packer_errors=["Build 'web.docker.web' errored after 1s", "Error: Unsupported argument"]
    )
    assert failure_message(ctx, image, state, log) == (
        f"image web@staging: packer: Error: Unsupported argument; log: {log}"
    )


def test_failure_message_says_packer_was_killed_by_a_signal(tmp_path: Path) -> None:
    ctx = context(FakeEngine())
    message = failure_message(ctx, ctx.project.images["app"], BuildState(), tmp_path / "l", 137)
    assert message.startswith("image app: packer was killed (SIGKILL)")
    assert "no tag was created or moved" in message


def test_failure_message_names_an_engine_that_stopped_answering(tmp_path: Path) -> None:
    ctx = context(FakeEngine(answers=False))
    image = ctx.project.images["app"]
    state = BuildState(packer_errors=["Error: Cannot connect to the Docker daemon"])
    message = failure_message(ctx, image, state, tmp_path / "l", 1)
    assert "the Docker engine (unix:///fake.sock) stopped answering" in message
    assert "no tag was created or moved" in message
    # An engine on its way down may still answer a ping: the docker CLI's words count too.
    ctx = context(FakeEngine(answers=True))
    failed = Failure("hold", "Wait", "EOF on stream: Cannot connect to the Docker daemon at x")
    message = failure_message(ctx, image, BuildState(failure=failed), tmp_path / "l", 1)
    assert "the Docker engine (unix:///fake.sock) stopped answering" in message


def test_labels_layer_spec_values_over_rolecasts() -> None:
    ctx = context(FakeEngine())
    found = labels(ctx, ctx.project.images["app"], ["latest"])
    assert found["org.opencontainers.image.title"] == "app"
    assert found["org.opencontainers.image.vendor"] == "Example Ops"
    assert found["com.example.team"] == "platform"
    assert found["io.rolecast.roles"] == "python_runtime,app"


def test_play_items_resume_after_the_deepest_cached_stage() -> None:
    project = load_project(ROOT)
    image = project.images["app"]
    manifest = Manifest(
        [Stage(n, {}, str(i) * 64) for i, n in enumerate(["image", "role app", "commit"])]
    )
    full = play_items(project, image, manifest, -1)
    scope = f"rolecast-cache/{project.identity}/app:"
    assert full == [
        StageCommit("image", scope + "0" * 32),
        ("app", {"app_port": 8080}),
        StageCommit("role app", scope + "1" * 32),
    ]
    assert play_items(project, image, manifest, 0) == full[1:]
    assert play_items(project, image, manifest, 1) == []


def test_a_git_tag_template_passes_the_early_check_in_a_git_checkout(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags are checked before any tool, with the commit already read."""
    from orchestrator.build import preflight

    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text("- ansible.builtin.meta: noop\n")
    (tmp_path / "rolecast.yml").write_text(
        "version: 1\ndefaults:\n  tags: ['{{ git.short_sha }}']\n"
        "images:\n  a:\n    from: debian:12\n    roles: [r]\n"
    )
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.test", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)

    def tools_reached() -> tuple[int, ...]:
        raise ToolMissingError("tools reached")

    monkeypatch.setattr(preflight, "check_tools", tools_reached)
    result = cli("-C", str(tmp_path), "build", "--plain")
    assert result.stderr.strip() == "tools reached"
    assert result.exit_code == 3
    sha = git_info(tmp_path).short_sha
    assert sha is not None and sha.startswith("sha-")
