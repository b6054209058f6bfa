"""Push logic with a faked engine: order, retries, and no retry on an auth failure."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.publish import PushError, push_image, registry_of


class FakeApi:
    def __init__(self, failures: dict[str, list[str]]) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def push(self, repository: str, tag: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(tag)
        queue = self.failures.get(tag, [])
        if queue:
            return [{"status": "preparing"}, {"error": queue.pop(0)}]
        return [{"status": "pushed"}, {"aux": {"Tag": tag, "Digest": "sha256:" + "a" * 64}}]


class FakeClient:
    def __init__(self, failures: dict[str, list[str]] | None = None) -> None:
        self.api = FakeApi(failures or {})


def test_immutable_tags_go_first_and_moving_ones_last() -> None:
    client = FakeClient()
    pushed = push_image(
        client, "r.example:5000/web", ["latest", "1.4.2", "1.4", "sha-abc"], {"latest", "1.4"},
        say=lambda text: None,
    )  # fmt: skip
    assert client.api.calls == ["1.4.2", "sha-abc", "latest", "1.4"]
    assert [p.reference for p in pushed][0] == "r.example:5000/web:1.4.2"


def test_a_transient_failure_is_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    client = FakeClient({"1.0.0": ["connection reset by peer", "i/o timeout"]})
    push_image(client, "localhost:5000/web", ["1.0.0"], set(), say=lambda text: None)
    assert client.api.calls == ["1.0.0"] * 3
    assert waits == [1.0, 2.0]


def test_retries_are_bounded_and_moving_tags_never_follow_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    client = FakeClient({"1.0.0": ["connection refused"] * 10})
    with pytest.raises(PushError, match="registry localhost:5000 failed 4 times"):
        push_image(client, "localhost:5000/web", ["latest", "1.0.0"], {"latest"}, say=print)
    assert client.api.calls == ["1.0.0"] * 4


def test_an_auth_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("slept"))
    client = FakeClient({"1": ["unauthorized: authentication required"]})
    with pytest.raises(PushError, match="refused the credentials .* not retried"):
        push_image(client, "localhost:5000/web", ["1"], set(), say=lambda text: None)
    assert client.api.calls == ["1"]


def test_registry_of() -> None:
    assert registry_of("localhost:5000/team/web") == "localhost:5000"
    assert registry_of("registry.example.com/web") == "registry.example.com"
    assert registry_of("team/web") == "docker.io"
