"""Packer's docker and ansible plugins. Packer 1.7 and later load them as separate
binaries (1.10 and later bundle none): a build pins their versions (`packer_plugins:` in
the spec, else the defaults below), finds them where Packer looks, and runs `packer init`
on the requirement once a run when one is missing. Packer 1.6 has them built in."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolMissingError
from .names import PACKER_PLUGIN_DEFAULTS

FIRST_SEPARATE = (1, 7)  # the first Packer that loads plugins as separate binaries
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Plugin:
    name: str  # as the template names it: docker, ansible
    version: str  # 1.1.4

    @property
    def source(self) -> str:
        return f"github.com/hashicorp/{self.name}"

    @property
    def install_line(self) -> str:
        return f"packer plugins install {self.source} v{self.version}"

    @property
    def binary(self) -> str:
        """The file name Packer installs it under (the API version, x5.0, left open)."""
        machine = platform.machine().lower()
        arch = _ARCH.get(machine, machine)
        return f"packer-plugin-{self.name}_v{self.version}_x*_linux_{arch}"


def pinned(pins: Mapping[str, str] | None = None) -> list[Plugin]:
    """The plugins a build uses, at the spec's versions or the defaults."""
    return [Plugin(name, (pins or {}).get(name, v)) for name, v in PACKER_PLUGIN_DEFAULTS.items()]


def plugin_dirs() -> list[Path]:
    """Where Packer looks for installed plugins: PACKER_PLUGIN_PATH, else its defaults."""
    given = os.environ.get("PACKER_PLUGIN_PATH", "").strip()
    if given:
        return [Path(p).expanduser() for p in given.split(os.pathsep) if p]
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [config / "packer" / "plugins", home / ".packer.d" / "plugins"]


def installed(plugin: Plugin) -> Path | None:
    """The installed binary of exactly this version, if any."""
    for directory in plugin_dirs():
        found = sorted((directory / plugin.source).glob(plugin.binary))
        if found:
            return found[0]
    return None


def installed_versions() -> dict[str, list[str]]:
    """Every installed version of each plugin a build uses (for `rolecast --version`)."""
    versions: dict[str, list[str]] = {}
    for plugin in pinned():
        found = set()
        for directory in plugin_dirs():
            for path in (directory / plugin.source).glob(f"packer-plugin-{plugin.name}_v*_x*"):
                if not path.name.endswith("_SHA256SUM"):
                    found.add(path.name.split("_v", 1)[1].split("_", 1)[0])
        versions[plugin.name] = sorted(found, key=_version_key)
    return versions


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def requirement(plugins: list[Plugin]) -> str:
    """The `packer { required_plugins { … } }` block `packer init` reads (HCL: init reads
    only .pkr.hcl files)."""
    lines = ["packer {", "  required_plugins {"]
    for plugin in plugins:
        lines += [
            f"    {plugin.name} = {{",
            f'      version = "= {plugin.version}"',
            f'      source  = "{plugin.source}"',
            "    }",
        ]
    return "\n".join([*lines, "  }", "}", ""])


def ensure(
    plugins: list[Plugin], packer: tuple[int, ...], work: Path, timeout: float = 600
) -> list[Plugin]:
    """Install the pinned plugins that are missing with `packer init` (once a run); the
    plugins it installed. ToolMissingError (exit 3) with the commands to run when it cannot."""
    if packer < FIRST_SEPARATE:
        return []
    missing = [p for p in plugins if installed(p) is None]
    if not missing:
        return []
    work.mkdir(parents=True, exist_ok=True)
    (work / "plugins.pkr.hcl").write_text(requirement(plugins), encoding="utf-8")
    try:
        done = subprocess.run(
            ["packer", "init", "plugins.pkr.hcl"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | {"CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1"},
        )
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no reason"]
        failed = done.returncode != 0
    except subprocess.TimeoutExpired:
        failed, reason = True, [f"no answer within {timeout:.0f} s"]
    still = [p for p in missing if installed(p) is None]
    if failed or still:
        raise ToolMissingError(unavailable_message(still or missing, reason[0]))
    return missing


def unavailable_message(missing: list[Plugin], reason: str) -> str:
    names = ", ".join(f"{p.name} {p.version}" for p in missing)
    where = plugin_dirs()[0]
    lines = [
        f"Packer's {names} plugin{'s' if len(missing) > 1 else ''} could not be installed "
        f"(packer init: {reason[:300]})",
        "install them on a machine with network access to GitHub:",
        *(f"  {p.install_line}" for p in missing),
        f"or copy their files (each binary with its _SHA256SUM) into {where}/"
        f"{missing[0].source}/ and the like (PACKER_PLUGIN_PATH chooses the directory)",
    ]
    return "\n".join(lines)
