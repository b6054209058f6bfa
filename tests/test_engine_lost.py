"""A build whose engine stops: an engine that shuts down stops its containers first, so
Ansible loses the build container while the engine still answers for a moment. The
failure must still name the engine, not the lost connection."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.build import packer
from orchestrator.packer_output import BuildState


class Stopping:
    """An engine that answers `answers` more pings, then never again."""

    address = "unix:///run/test-engine.sock"

    def __init__(self, answers: int) -> None:
        self.answers = answers

    def ping(self) -> bool:
        self.answers -= 1
        return self.answers >= 0


def message(engine: Stopping, said: str) -> str:
    ctx: Any = SimpleNamespace(engine=engine, rel=str)
    state = BuildState(ansible_error=said)
    return packer.failure_message(ctx, SimpleNamespace(name="web"), state, Path("web.log"))  # type: ignore[arg-type]


def test_a_lost_container_and_an_engine_that_stops_a_moment_later_name_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("orchestrator.build.packer.time.sleep", lambda seconds: None)
    said = "Unexpected failure during module execution: the respondent Context has disconnected"
    found = message(Stopping(answers=3), said)
    assert "the Docker engine (unix:///run/test-engine.sock) stopped answering" in found
    # The engine goes on answering: the container went on its own, Ansible's words stay.
    monkeypatch.setattr(packer, "ENGINE_GRACE", 0.0)
    kept = message(Stopping(answers=1000), said)
    assert "stopped answering" not in kept and "respondent Context has disconnected" in kept
    # Any other failure does not wait for the engine at all.
    other = Stopping(answers=1000)
    message(other, "ERROR! the role 'nginx' was not found")
    assert other.answers == 999  # one ping, no wait
