"""The programs and libraries Rolecast drives, and which versions of them are here."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .engines import engine_version
from .engines.address import current_address, shown
from .errors import ToolMissingError
from .runner import INSTALL_HINTS, capture


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def packer_version() -> tuple[int, ...] | None:
    """Packer's version as numbers (1, 6, 6), or None when packer is not installed."""
    if shutil.which("packer") is None:
        return None
    out = capture(["packer", "version"], timeout=20)
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out or "")
    return tuple(int(p) for p in match.groups()) if match else None


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise ToolMissingError(INSTALL_HINTS.get(program, f"{program} is not installed"))
    return path


@dataclass(frozen=True)
class Versions:
    rolecast: str
    ansible_core: str | None
    mitogen: str | None
    packer: str | None
    docker_engine: str | None
    docker_address: str

    def lines(self) -> list[str]:
        def show(value: str | None) -> str:
            return value or "not found"

        return [
            f"rolecast {self.rolecast}",
            f"ansible-core {show(self.ansible_core)}",
            f"mitogen {show(self.mitogen)}",
            f"packer {show(self.packer)}",
            f"docker engine {show(self.docker_engine)} at {shown(self.docker_address)}",
        ]


def versions() -> Versions:
    packer = packer_version()
    return Versions(
        rolecast=__version__,
        ansible_core=package_version("ansible-core"),
        mitogen=package_version("mitogen"),
        packer=".".join(map(str, packer)) if packer else None,
        docker_engine=engine_version(),
        docker_address=current_address(),
    )


def mitogen_strategy_dir() -> Path | None:
    """Where mitogen's Ansible strategy plugins are, when mitogen is installed."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return path if (path / "mitogen_linear.py").is_file() else None


def community_docker_installed() -> bool:
    """Whether the community.docker collection (its docker connection) can be loaded."""
    try:
        from ansible.collections.list import list_collection_dirs
    except ImportError:  # pragma: no cover
        return False
    try:
        return any(True for _ in list_collection_dirs(coll_filter="community.docker"))
    except Exception:
        return False
