"""Base images: the debootstrap command line and the mirror read from the machine's apt sources."""

from __future__ import annotations

from pathlib import Path

from orchestrator.bases import debootstrap_argv, machine_mirror
from orchestrator.spec import BaseImage


def test_debootstrap_argv() -> None:
    base = BaseImage(suite="bookworm", variant="minbase", include=["python3", "python3-apt"])
    assert debootstrap_argv(base, Path("/t/rootfs"), "http://mirror.invalid/debian") == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3,python3-apt",
        "bookworm",
        "/t/rootfs",
        "http://mirror.invalid/debian",
    ]
    plain = BaseImage(suite="trixie", variant="default", include=[])
    assert debootstrap_argv(plain, Path("/r"), None) == ["debootstrap", "trixie", "/r"]


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "# a comment: here\n"
        "URIs: http://mirror.invalid/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\n"
    )
    assert machine_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"
    assert machine_mirror("jammy", tmp_path) is None


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb [arch=amd64] http://mirror.invalid/ubuntu jammy main universe\n"
    )
    assert machine_mirror("jammy", tmp_path) == "http://mirror.invalid/ubuntu"
    assert machine_mirror("bookworm", tmp_path) is None
