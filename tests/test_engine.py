"""The engine's decisions, with Docker and Packer faked: parents, bases, connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.engine import Builder, BuildOptions, choose_connection
from orchestrator.errors import BuildFailedError, ToolMissingError
from orchestrator.packer_output import BuildState, Failure
from orchestrator.project import load_project

from .conftest import ROOT


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, reference: str) -> Any:
        from docker.errors import ImageNotFound

        if reference not in self.present:
            raise ImageNotFound(reference)
        return type("Image", (), {"attrs": {"Config": {"Cmd": ["/bin/bash"]}}})()

    def pull(self, reference: str) -> None:
        from docker.errors import APIError

        raise APIError("pull access denied", explanation="repository does not exist")


class FakeClient:
    def __init__(self, present: set[str]) -> None:
        self.images = FakeImages(present)


def builder(present: set[str]) -> Builder:
    b = Builder(load_project(ROOT), BuildOptions(), lambda event: None)
    b.client = FakeClient(present)
    return b


def test_a_base_is_made_once_for_all_its_children(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    made: list[str] = []

    def fake_make_base(client: Any, name: str, *args: Any, **kwargs: Any) -> str:
        made.append(name)
        client.images.present.add("rolecast/debian-bookworm:bookworm")
        return "made"

    monkeypatch.setattr(engine, "make_base", fake_make_base)
    b = builder(set())
    project = b.project
    image = project.images["base"]
    assert b.ensure_parent(image, tmp_path / "log") == "rolecast/debian-bookworm:bookworm"
    assert b.ensure_parent(image, tmp_path / "log") == "rolecast/debian-bookworm:bookworm"
    assert made == ["debian-bookworm"]


def test_a_missing_parent_image_of_the_file_says_to_build_it(tmp_path: Path) -> None:
    b = builder(set())
    with pytest.raises(BuildFailedError) as info:
        b.ensure_parent(b.project.images["app"], tmp_path / "log")
    assert str(info.value) == (
        "image app: its parent localhost:5000/example/base:latest does not exist; "
        "build base first (rolecast build base)"
    )


def test_an_unpullable_external_parent_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "rolecast.yml"
    spec.write_text("version: 1\nimages:\n  x:\n    from: nowhere/nothing:1\n")
    (tmp_path / "roles").mkdir()
    b = Builder(load_project(tmp_path), BuildOptions(), lambda event: None)
    b.client = FakeClient(set())
    with pytest.raises(BuildFailedError) as info:
        b.ensure_parent(b.project.images["x"], tmp_path / "log")
    assert str(info.value).startswith(
        "image x: base image nowhere/nothing:1 is not present and cannot be pulled "
        "(repository does not exist)"
    )


def test_auto_connection_prefers_mitogen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "mitogen_strategy_dir", lambda: Path("/m"))
    monkeypatch.setattr(engine, "community_docker_installed", lambda: True)
    assert choose_connection("auto") == ("mitogen", Path("/m"))
    monkeypatch.setattr(engine, "mitogen_strategy_dir", lambda: None)
    assert choose_connection("auto") == ("docker", None)
    monkeypatch.setattr(engine, "community_docker_installed", lambda: False)
    assert choose_connection("auto") == ("proxy", None)
    with pytest.raises(ToolMissingError, match="community.docker collection is not installed"):
        choose_connection("docker")
    with pytest.raises(ToolMissingError, match="mitogen is not installed"):
        choose_connection("mitogen")


def test_failure_message_prefers_the_failed_task_then_packers_own_line(tmp_path: Path) -> None:
    b = builder(set())
    b.client = EngineThatAnswers(True)
    image = b.project.images["web@staging"]
    log = tmp_path / "web.log"
    state = BuildState(
        packer_errors=["Build 'web.docker.web' errored after 1s", "Error: Unsupported argument"]
    )
    assert b._failure_message(image, state, log) == (
        f"image web@staging: packer: Error: Unsupported argument; log: {log}"
    )


class EngineThatAnswers:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    def ping(self) -> bool:
        if not self.answers:
            raise ConnectionError("Connection refused")
        return True


def test_failure_message_says_packer_was_killed_by_a_signal(tmp_path: Path) -> None:
    b = builder(set())
    b.client = EngineThatAnswers(True)
    message = b._failure_message(b.project.images["app"], BuildState(), tmp_path / "l", 137)
    assert message.startswith("image app: packer was killed (SIGKILL)")
    assert "no tag was created or moved" in message


def test_failure_message_names_an_engine_that_stopped_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/gone.sock")
    b = builder(set())
    b.client = EngineThatAnswers(False)
    image = b.project.images["app"]
    state = BuildState(packer_errors=["Error: Cannot connect to the Docker daemon"])
    message = b._failure_message(image, state, tmp_path / "l", 1)
    assert "the Docker engine (unix:///tmp/gone.sock) stopped answering" in message
    assert "no tag was created or moved" in message
    # An engine on its way down may still answer a ping: the docker CLI's words count too.
    b.client = EngineThatAnswers(True)
    failed = Failure("hold", "Wait", "EOF on stream: Cannot connect to the Docker daemon at x")
    message = b._failure_message(image, BuildState(failure=failed), tmp_path / "l", 1)
    assert "the Docker engine (unix:///tmp/gone.sock) stopped answering" in message


def test_labels_layer_spec_values_over_rolecasts(monkeypatch: pytest.MonkeyPatch) -> None:
    b = builder(set())
    labels = b.labels(b.project.images["app"], ["latest"])
    assert labels["org.opencontainers.image.title"] == "app"
    assert labels["org.opencontainers.image.vendor"] == "Example Ops"
    assert labels["com.example.team"] == "platform"
    assert labels["io.rolecast.roles"] == "python_runtime,app"


def fleet(
    monkeypatch: pytest.MonkeyPatch, failing: set[str], options: BuildOptions
) -> tuple[Builder, list[str]]:
    """A builder whose per-image build is faked: it records the order and fails on demand."""
    b = Builder(load_project(ROOT), options, lambda event: None)
    started: list[str] = []
    monkeypatch.setattr(b, "check_tools", lambda: None)
    monkeypatch.setattr(b, "install_requirements", lambda: None)

    def build_image(name: str, report: engine.BuildReport) -> None:
        started.append(name)
        if name in failing:
            raise BuildFailedError(f"image {name}: failed")
        report.images.append(engine.ImageResult(name=name, result="built"))

    monkeypatch.setattr(b, "build_image", build_image)
    return b, started


def test_a_failure_skips_its_dependents_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b, started = fleet(monkeypatch, {"web@staging"}, BuildOptions(jobs=2, keep_going=True))
    with pytest.raises(BuildFailedError) as info:
        b.build([])
    report = info.value.report  # type: ignore[attr-defined]
    results = {i.name: (i.result, i.error) for i in report.images}
    assert results == {
        "base": ("built", None),
        "web@staging": ("failed", "image web@staging: failed"),
        "web@production": ("built", None),
        "app": ("built", None),
    }
    assert started[0] == "base" and set(started) == {"base", "web@staging", "web@production", "app"}
    assert [i.name for i in report.images] == ["base", "web@staging", "web@production", "app"]


def test_a_failed_parent_skips_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    b, started = fleet(monkeypatch, {"base"}, BuildOptions(jobs=2, keep_going=True))
    with pytest.raises(BuildFailedError) as info:
        b.build([])
    report = info.value.report  # type: ignore[attr-defined]
    assert started == ["base"]
    assert {i.name: (i.result, i.error) for i in report.images if i.result == "skipped"} == {
        "web@staging": ("skipped", "base failed"),
        "web@production": ("skipped", "base failed"),
        "app": ("skipped", "base failed"),
    }


def test_fail_fast_starts_nothing_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    b, started = fleet(monkeypatch, {"base"}, BuildOptions(jobs=1, keep_going=False))
    with pytest.raises(BuildFailedError):
        b.build(["base", "app"])
    assert started == ["base"]


def test_play_items_resume_after_the_deepest_cached_stage() -> None:
    from orchestrator.fingerprint import Manifest, Stage
    from orchestrator.render import StageCommit

    b = builder(set())
    image = b.project.images["app"]
    manifest = Manifest(
        [Stage(n, {}, str(i) * 64) for i, n in enumerate(["image", "role app", "commit"])]
    )
    full = b.play_items(image, manifest, -1)
    assert full == [
        StageCommit("image", "rolecast-cache/app:" + "0" * 32),
        ("app", {"app_port": 8080}),
        StageCommit("role app", "rolecast-cache/app:" + "1" * 32),
    ]
    assert b.play_items(image, manifest, 0) == full[1:]
    assert b.play_items(image, manifest, 1) == []
