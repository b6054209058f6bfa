"""Base images made with debootstrap, for sites where no registry has one to pull."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .engines import Engine, EngineError
from .errors import BuildFailedError, CommandFailedError, RolecastError, ToolMissingError
from .runner import run
from .spec import BaseImage
from .tools import require

Say = Callable[[str], None]

PULL_TIMEOUT = 120
DEBOOTSTRAP_TIMEOUT = 1800
IMPORT_TIMEOUT = 600
APT_SOURCES = Path("/etc/apt")


def machine_mirror(suite: str, apt_dir: Path = APT_SOURCES) -> str | None:
    """The mirror this machine's apt sources use for `suite`, so debootstrap uses the same one."""
    files = sorted((apt_dir / "sources.list.d").glob("*.sources"))
    for path in files:
        for stanza in re.split(r"\n\s*\n", _read(path)):
            fields = _deb822(stanza)
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
            ):
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0]
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        for line in _read(path).splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                return parts[1]
    return None


def _deb822(stanza: str) -> dict[str, str]:
    fields = {}
    for line in stanza.splitlines():
        key, _, value = line.partition(":")
        if not line.startswith(("#", " ")) and value.strip():
            fields[key.strip().lower()] = value.strip()
    return fields


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def debootstrap_argv(base: BaseImage, target: Path, mirror: str | None) -> list[str]:
    argv = ["debootstrap"]
    if base.variant != "default":
        argv.append(f"--variant={base.variant}")
    if base.include:
        argv.append(f"--include={','.join(base.include)}")
    argv += [base.suite, str(target)]
    if mirror:
        argv.append(mirror)
    return argv


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in _read(Path("/proc/mounts")).splitlines():
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    """Remove a debootstrap target, never following a mount into the host (/proc, /dev)."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if _mounts_under(path):
        raise RolecastError(f"{path} still has mounts; unmount them, then remove it by hand")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def make_base(
    engine: Engine,
    name: str,
    base: BaseImage,
    reference: str,
    *,
    say: Say,
    log_file: Path | None = None,
    force: bool = False,
) -> str:
    """Ensure `reference` exists: keep it, else pull it, else debootstrap and import it."""
    if not force and engine.image(reference) is not None:
        say(f"base {name}: {reference} is present")
        return "present"
    if not force and _try_pull(engine, reference, say):
        return "pulled"
    require("debootstrap")
    if os.geteuid() != 0:
        raise ToolMissingError(
            f"base {name}: making {reference} with debootstrap needs root; run as root "
            f"(sudo rolecast bases {name}) or load the image with `docker load`"
        )
    mirror = base.mirror or machine_mirror(base.suite)
    workdir = Path(tempfile.mkdtemp(prefix=f"rolecast-base-{name}-", dir="/var/tmp"))
    rootfs = workdir / "rootfs"
    try:
        say(f"base {name}: debootstrap {base.suite} ({base.variant}) from {mirror or 'default'}")
        try:
            run(
                debootstrap_argv(base, rootfs, mirror),
                timeout=DEBOOTSTRAP_TIMEOUT,
                log_file=log_file,
                what=f"debootstrap of base {name}",
            )
        except CommandFailedError as exc:
            raise BuildFailedError(
                f"base {name}: debootstrap failed (exit {exc.returncode}): "
                f"{exc.tail[-1] if exc.tail else 'no output'}"
                + (f"; log: {log_file}" if log_file else "")
            ) from None
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        say(f"base {name}: importing as {reference}")
        engine.import_rootfs(
            rootfs,
            reference,
            [
                'CMD ["/bin/bash"]',
                f"LABEL io.rolecast.base={name} io.rolecast.base.suite={base.suite}",
            ],
            timeout=IMPORT_TIMEOUT,
            log=log_file,
        )
    finally:
        _remove_tree(workdir)
    say(f"base {name}: made {reference}")
    return "made"


def _try_pull(engine: Engine, reference: str, say: Say) -> bool:
    say(f"base {reference}: not present, trying to pull")
    try:
        engine.pull(reference)
    except EngineError as exc:
        say(f"base {reference}: cannot pull ({str(exc)[:200]})")
        return False
    return engine.image(reference) is not None
