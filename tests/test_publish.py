"""Push logic with a faked engine: order, retries, and no retry on an auth failure."""

from __future__ import annotations

import time

import pytest

from orchestrator.publish import PushError, push_image, registry_of

from .fakes import FakeEngine


def engine_with(
    repository: str, tags: list[str], failures: dict[str, list[str]] | None = None
) -> FakeEngine:
    """An engine holding one image with these tags, whose pushes fail as told."""
    engine = FakeEngine(push_failures=failures or {})
    engine.add_image(*[f"{repository}:{t}" for t in tags])
    return engine


def pushes(engine: FakeEngine) -> list[str]:
    return [call[1].rsplit(":", 1)[1] for call in engine.calls if call[0] == "push"]


def test_immutable_tags_go_first_and_moving_ones_last() -> None:
    tags = ["latest", "1.4.2", "1.4", "sha-abc"]
    engine = engine_with("r.example:5000/web", tags)
    pushed = push_image(
        engine, "r.example:5000/web", tags, {"latest", "1.4"}, say=lambda text: None
    )
    assert pushes(engine) == ["1.4.2", "sha-abc", "latest", "1.4"]
    assert [p.reference for p in pushed][0] == "r.example:5000/web:1.4.2"


def test_a_transient_failure_is_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    engine = engine_with(
        "localhost:5000/web", ["1.0.0"], {"1.0.0": ["connection reset by peer", "i/o timeout"]}
    )
    push_image(engine, "localhost:5000/web", ["1.0.0"], set(), say=lambda text: None)
    assert pushes(engine) == ["1.0.0"] * 3
    assert waits == [1.0, 2.0]


def test_retries_are_bounded_and_moving_tags_never_follow_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    engine = engine_with(
        "localhost:5000/web", ["latest", "1.0.0"], {"1.0.0": ["connection refused"] * 10}
    )
    with pytest.raises(PushError, match="registry localhost:5000 failed 4 times"):
        push_image(engine, "localhost:5000/web", ["latest", "1.0.0"], {"latest"}, say=print)
    assert pushes(engine) == ["1.0.0"] * 4


def test_an_auth_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("slept"))
    engine = engine_with(
        "localhost:5000/web", ["1"], {"1": ["unauthorized: authentication required"]}
    )
    with pytest.raises(PushError, match="refused the credentials .* not retried"):
        push_image(engine, "localhost:5000/web", ["1"], set(), say=lambda text: None)
    assert pushes(engine) == ["1"]


def test_registry_of() -> None:
    assert registry_of("localhost:5000/team/web") == "localhost:5000"
    assert registry_of("registry.example.com/web") == "registry.example.com"
    assert registry_of("team/web") == "docker.io"
