"""Registry credentials from the environment: ROLECAST_REGISTRY_USERNAME and
ROLECAST_REGISTRY_PASSWORD, taken out of it as the command starts (no program Rolecast
starts inherits them) and kept in this process's memory for its pushes."""

from __future__ import annotations

import os

ENV_USERNAME = "ROLECAST_REGISTRY_USERNAME"
ENV_PASSWORD = "ROLECAST_REGISTRY_PASSWORD"
_TAKEN: dict[str, str] = {}


def take_credentials() -> None:
    """Move ROLECAST_REGISTRY_USERNAME/PASSWORD from the environment into this process's
    memory: no program Rolecast starts (Packer, Ansible, gates, docker) inherits them."""
    for key in ENV_USERNAME, ENV_PASSWORD:
        value = os.environ.pop(key, None)
        if value is not None:
            _TAKEN[key] = value


def credentials() -> dict[str, str] | None:
    """Credentials from the environment, or None for the Docker config's."""
    username = _TAKEN.get(ENV_USERNAME) or os.environ.get(ENV_USERNAME)
    password = _TAKEN.get(ENV_PASSWORD) or os.environ.get(ENV_PASSWORD)
    if username and password:
        return {"username": username, "password": password}
    return None
