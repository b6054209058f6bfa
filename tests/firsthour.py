"""The first-hour project and its cases of bad input (tests/data/firsthour): each case is a
directory of files laid over the project, and `expect`, the exact lines Rolecast must say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import DATA

FIRSTHOUR = DATA / "firsthour"
CASES = sorted(p for p in (FIRSTHOUR / "cases").iterdir() if p.is_dir())


def make_project(dest: Path, case: Path | None = None) -> Path:
    """The project at `dest`, with the case's files laid over it, committed to git (but for
    a case about being outside git)."""
    shutil.copytree(FIRSTHOUR / "project", dest)
    if case is not None:
        shutil.copytree(case, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("expect"))
    if case is None or "outside-git" not in case.name:
        git = ["git", "-C", str(dest), "-c", "user.email=t@example.org", "-c", "user.name=t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", "first"], check=True)
    return dest


def expected(case: Path) -> list[str]:
    return (case / "expect").read_text().splitlines()
