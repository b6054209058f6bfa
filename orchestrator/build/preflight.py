"""Before any image: the tools a build drives, and the roles and collections of
`requirements:`, installed once for the whole run."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .. import packer_plugins
from ..errors import ToolMissingError
from ..locks import ProjectLock
from ..project import Project
from ..report import Event, OnEvent, Phase
from ..requirements import install_requirements
from ..runner import INSTALL_HINTS
from ..tools import packer_version, require
from .context import Context


def check_tools() -> tuple[int, ...]:
    """Packer's version; packer and the docker CLI (Packer's builder and the mitogen
    connection run it) must be here."""
    require("packer")
    require("docker")
    version = packer_version()
    if version is None:
        raise ToolMissingError("packer does not report its version: reinstall it")
    return version


def plugins(project: Project, packer: tuple[int, ...], on_event: OnEvent) -> None:
    """With Packer 1.7 and later, the pinned docker and ansible plugins, installed by
    `packer init` when missing: once a run, before the engine is asked anything."""
    wanted = packer_plugins.pinned(project.packer_plugins)
    if packer < packer_plugins.FIRST_SEPARATE:
        return
    if all(packer_plugins.installed(p) for p in wanted):
        return

    def say(phase: str, text: str) -> None:
        on_event(Event(image="packer", phase=phase, message=text))

    say(Phase.INSTALLING, "Packer's plugins: packer init")
    root = project.root.resolve()
    lock = ProjectLock(root, "packer-plugins", "Packer's plugins", lambda t: say(Phase.LOCK, t))
    with lock:
        done = packer_plugins.ensure(wanted, packer, root / ".rolecast" / "packer-plugins")
    if done:
        shown = ", ".join(f"{p.name} {p.version}" for p in done)
        say(Phase.INSTALLED, f"Packer's plugins: {shown}")


def ansible_playbook() -> str:
    """The ansible-playbook of this installation, so Packer runs the Ansible Rolecast has."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise ToolMissingError(INSTALL_HINTS["ansible-playbook"])
    return found


def requirements(ctx: Context) -> None:
    """Install `requirements:` under its lock; say what each entry resolved to."""
    project = ctx.project
    if project.requirements is None:
        return
    log = ctx.logs / f"requirements-{ctx.stamp}.log"
    with ctx.lock("requirements", "the requirements", "requirements"):
        ctx.emit("requirements", Phase.INSTALLING, ctx.rel(project.requirements))
        resolved = install_requirements(
            project.requirements,
            project.galaxy,
            galaxy_tool=str(Path(ansible_playbook()).parent / "ansible-galaxy"),
            log=log,
            timeout=ctx.options.timeout,
            shown=ctx.rel,
        )
    versions = ", ".join(f"{name} {version}" for name, version in sorted(resolved.items()))
    ctx.emit("requirements", Phase.INSTALLED, versions)
