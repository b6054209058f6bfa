"""The engine's address (-H / DOCKER_HOST) in words: which one is in force, what reaching it
tried, and what to check when nothing answers there."""

from __future__ import annotations

import os
import textwrap
from urllib.parse import urlsplit

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
_LOCAL_SOCKETS = {DEFAULT_ADDRESS, "unix:///run/docker.sock"}
REASON_WIDTH = 300


def given_address() -> str | None:
    """The address -H or DOCKER_HOST gave (-H sets DOCKER_HOST), if any."""
    return os.environ.get("DOCKER_HOST", "").strip() or None


def current_address() -> str:
    """The engine address in force: the one given, else the local socket."""
    return given_address() or DEFAULT_ADDRESS


def unix_socket(address: str) -> str | None:
    """The socket's path when the address is a unix socket (unix:///PATH), else None."""
    path = address.removeprefix("unix://")
    return path if path != address and path else None


def invalid(address: str) -> str | None:
    """Why `address` is not an engine address, or None when it is one."""
    if not address.startswith(("unix://", "tcp://", "ssh://", "fd://")):
        return "not an engine address"
    try:
        parts = urlsplit(address)
        port = parts.port  # parsing it is the check
    except ValueError:
        return "its port is not a number"
    if parts.scheme == "tcp" and port is None:
        return "give its port (tcp://HOST:2376 with TLS, tcp://HOST:2375 without)"
    return None


def shown(address: str) -> str:
    """The address as messages show it: a password in it (ssh://USER:PASSWORD@HOST) hidden."""
    parts = urlsplit(address)
    if parts.password is None:
        return address
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=user + host).geturl()


def shorten(text: str, width: int = REASON_WIDTH) -> str:
    """One line of at most `width` characters, cut between words, never inside one."""
    return textwrap.shorten(" ".join(text.split()), width, placeholder=" …") or text[:width]


def _tried(address: str) -> tuple[str, str]:
    """What connecting to `address` tried, and what to check when it failed."""
    parts = urlsplit(address)
    if address in _LOCAL_SOCKETS:
        return (
            f"tried the local socket {parts.path}",
            "start dockerd (see README, Setup), or choose another engine with -H",
        )
    if parts.scheme == "unix":
        return (
            f"tried the socket {parts.path}",
            "check the address: it must be the socket of a running Docker engine",
        )
    if parts.scheme == "tcp":
        where = f"{parts.hostname}:{parts.port}" if parts.port else f"{parts.hostname}"
        return (
            f"tried a TCP connection to {where}",
            "check the address, and that the engine there listens on TCP "
            "(with TLS: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)",
        )
    if parts.scheme == "ssh":
        user = f"{parts.username}@" if parts.username else ""
        port = f" -p {parts.port}" if parts.port else ""
        return (
            f"tried ssh to {user}{parts.hostname} port {parts.port or 22}, "
            "to run `docker system dial-stdio` there",
            f"check that `ssh{port} {user}{parts.hostname} docker version` works without a "
            "prompt (a key from your ssh agent or ~/.ssh/config, the host's key in "
            "~/.ssh/known_hosts) and shows the Server: docker installed there, its socket "
            "usable by that user (README, Engines)",
        )
    return f"tried {shown(address)}", "check the address"


def unreachable_message(address: str, reason: str, *, given: bool) -> str:
    """The message for an engine that does not answer: the address (and that -H or
    DOCKER_HOST chose it, when `given`), what was tried and why it failed, then what to do
    on a line of its own."""
    try:
        tried, advice = _tried(address)
    except ValueError:  # a port that is not a number
        tried, advice = f"tried {shown(address)}", "check the address"
    source = " (-H or DOCKER_HOST)" if given else ""
    reason = shorten(reason.replace(address, shown(address)))  # the SDK's may quote it
    return f"no Docker engine answers at {shown(address)}{source}: {tried}: {reason}\n{advice}"
