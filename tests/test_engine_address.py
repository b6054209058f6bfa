"""The engine address (-H / DOCKER_HOST): what a user reads when nothing answers there, and
`--version` reporting the engine -H chose. Nothing listens on port 1 or at /nope.sock: the
connections really fail, no engine is needed."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engines.address import DEFAULT_ADDRESS, shorten, shown, unreachable_message


@pytest.fixture(autouse=True)
def no_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """-H sets DOCKER_HOST in this process: the test's value goes when the test ends."""
    monkeypatch.setenv("DOCKER_HOST", "")


@pytest.mark.parametrize(
    ("address", "tried", "reason", "advice"),
    [
        (
            "tcp://127.0.0.1:1",
            "tried a TCP connection to 127.0.0.1:1",
            "Connection refused",
            "check the address, and that the engine there listens on TCP",
        ),
        (
            "unix:///nope.sock",
            "tried the socket /nope.sock",
            "No such file or directory",
            "check the address: it must be the socket of a running Docker engine",
        ),
        (
            "ssh://nobody@127.0.0.1:1",
            "tried ssh to nobody@127.0.0.1 port 1, to run `docker system dial-stdio` there",
            "Connection refused",
            "check that `ssh -p 1 nobody@127.0.0.1 docker version` works without a prompt",
        ),
    ],
)
def test_an_engine_that_does_not_answer_is_named_with_what_was_tried(
    cli: Any, address: str, tried: str, reason: str, advice: str
) -> None:
    result = cli("-H", address, "plan")
    assert result.exit_code == 3
    first, second = result.stderr.splitlines()
    assert first == f"no Docker engine answers at {address} (-H or DOCKER_HOST): {tried}: {reason}"
    assert second.startswith(advice)
    # Not the default engine's words: this address is not the local socket.
    assert "dockerd" not in result.stderr
    assert "docker.sock" not in result.stderr


def test_only_the_local_default_socket_is_told_to_start_dockerd() -> None:
    local = unreachable_message(DEFAULT_ADDRESS, "No such file or directory", given=False)
    assert local.splitlines() == [
        "no Docker engine answers at unix:///var/run/docker.sock: tried the local socket "
        "/var/run/docker.sock: No such file or directory",
        "start dockerd (see README, Setup), or choose another engine with -H",
    ]
    chosen = unreachable_message(DEFAULT_ADDRESS, "Permission denied", given=True)
    assert "(-H or DOCKER_HOST)" in chosen and "start dockerd" in chosen
    for other in ("unix:///run/user/1000/docker.sock", "tcp://build:2376", "ssh://b@build"):
        assert "dockerd" not in unreachable_message(other, "Connection refused", given=True)


def test_a_long_reason_is_cut_between_words() -> None:
    words = [f"word{i}" for i in range(200)]
    message = unreachable_message("tcp://build:2376", " ".join(words), given=True)
    reason = message.splitlines()[0].split(": ", 2)[2]
    assert len(reason) <= 300
    assert reason.endswith(" …")
    kept = reason.removesuffix(" …").split(" ")
    assert kept == words[: len(kept)]
    assert shorten("short\nreason  here") == "short reason here"


def test_a_password_in_the_address_is_never_shown(cli: Any) -> None:
    assert shown("ssh://me:s3cret@build:2222") == "ssh://me:***@build:2222"
    assert shown("ssh://me@build") == "ssh://me@build"
    result = cli("-H", "ssh://me:s3cret@127.0.0.1:1", "plan")
    assert result.exit_code == 3
    assert "s3cret" not in result.stderr
    assert "ssh://me:***@127.0.0.1:1" in result.stderr


@pytest.mark.parametrize("order", ["-H first", "--version first"])
def test_version_reports_the_engine_of_dash_h(cli: Any, order: str) -> None:
    args = ["-H", "tcp://127.0.0.1:1"]
    result = cli(*(args + ["--version"] if order == "-H first" else ["--version", *args]))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "docker engine not found at tcp://127.0.0.1:1"


def test_global_options_without_a_command_still_ask_for_one(cli: Any) -> None:
    result = cli("-v")
    assert result.exit_code == 2
    assert "Missing command." in result.stderr


def test_an_address_whose_port_is_no_number_is_invalid_input(cli: Any) -> None:
    result = cli("-H", "tcp://build:abc", "plan")
    assert result.exit_code == 2
    assert result.stderr.startswith("--docker-host tcp://build:abc: its port is not a number;")
