"""The programs and libraries Rolecast drives, and which versions of them are here."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .engines import engine_version
from .engines.address import current_address, shown
from .errors import ToolMissingError
from .runner import INSTALL_HINTS, capture


@functools.cache
def package_version(name: str) -> str | None:
    """An installed distribution's version, looked up once a process (each lookup scans
    every distribution on the path: ~2 ms, and every image's fingerprint asks)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def packer_version() -> tuple[int, ...] | None:
    """Packer's version as numbers (1, 6, 6), or None when packer is not installed. Asking
    costs a start of its 100 MB binary (~0.1 s a build): the answer is kept in the user's
    cache until the binary at that path changes (another inode, size, mtime or ctime)."""
    path = shutil.which("packer")
    if path is None:
        return None
    key = _binary_key(path)
    cache = _cache_dir() / "packer-version.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        known = json.loads(cache.read_text(encoding="utf-8"))
        if known["binary"] == key:
            return tuple(int(p) for p in known["version"])
    out = capture(["packer", "version"], timeout=20)
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out or "")
    if match is None:
        return None
    version = tuple(int(p) for p in match.groups())
    with contextlib.suppress(OSError):  # a read-only home only costs the next build 0.1 s
        cache.parent.mkdir(parents=True, exist_ok=True)
        written = cache.with_name(f"{cache.name}.{os.getpid()}")
        written.write_text(json.dumps({"binary": key, "version": version}), encoding="utf-8")
        os.replace(written, cache)
    return version


def _binary_key(path: str) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    return f"{real}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _cache_dir() -> Path:
    """Rolecast's directory in the user's cache (XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rolecast"


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
    plugins: str | None  # Packer's docker and ansible plugins, as found
    engine: tuple[str, str | None]  # kind, version
    engine_address: str

    def lines(self) -> list[str]:
        def show(value: str | None) -> str:
            return value or "not found"

        return [
            f"rolecast {self.rolecast}",
            f"ansible-core {show(self.ansible_core)}",
            f"mitogen {show(self.mitogen)}",
            f"packer {show(self.packer)}",
            *([f"packer-plugins {self.plugins}"] if self.plugins else []),
            f"{self.engine[0]} engine {show(self.engine[1])} at {shown(self.engine_address)}",
        ]


def plugin_versions(packer: tuple[int, ...] | None) -> str | None:
    """Packer's docker and ansible plugins: built in (Packer 1.6), else the versions
    installed where Packer looks."""
    from .packer_plugins import FIRST_SEPARATE, installed_versions

    if packer is None:
        return None
    if packer < FIRST_SEPARATE:
        return "docker and ansible built into packer"
    found = installed_versions()
    return ", ".join(f"{name} {' '.join(v) or 'not installed'}" for name, v in found.items())


def versions() -> Versions:
    packer = packer_version()
    return Versions(
        rolecast=__version__,
        ansible_core=package_version("ansible-core"),
        mitogen=package_version("mitogen"),
        packer=".".join(map(str, packer)) if packer else None,
        plugins=plugin_versions(packer),
        engine=engine_version(),
        engine_address=current_address(),
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
