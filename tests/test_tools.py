"""Which versions of the tools are here: Packer's is asked once per binary, not per build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.tools import packer_version


def fake_packer(bin_dir: Path, version: str) -> Path:
    """A packer that says its version and counts how often it was asked."""
    script = bin_dir / "packer"
    script.write_text(f"#!/bin/sh\necho x >> {bin_dir}/asked\necho 'Packer v{version}'\n")
    script.chmod(0o755)
    return script


def asked(bin_dir: Path) -> int:
    counter = bin_dir / "asked"
    return len(counter.read_text().splitlines()) if counter.exists() else 0


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "bin"


def test_packer_is_asked_once_until_its_binary_changes(bin_dir: Path) -> None:
    script = fake_packer(bin_dir, "1.6.6")
    assert packer_version() == (1, 6, 6)
    assert packer_version() == (1, 6, 6)
    assert asked(bin_dir) == 1
    fake_packer(bin_dir, "1.9.4")  # an upgrade in place: same path, same size
    st = script.stat()
    os.utime(script, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    assert packer_version() == (1, 9, 4)
    assert asked(bin_dir) == 2


def test_another_packer_on_the_path_is_asked(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_packer(bin_dir, "1.6.6")
    assert packer_version() == (1, 6, 6)
    other = tmp_path / "other"
    other.mkdir()
    fake_packer(other, "1.10.0")
    monkeypatch.setenv("PATH", f"{other}:{os.environ['PATH']}")
    assert packer_version() == (1, 10, 0)


def test_an_unwritable_cache_still_answers(bin_dir: Path, tmp_path: Path) -> None:
    fake_packer(bin_dir, "1.6.6")
    (tmp_path / "cache").write_text("a file where the directory would be")
    assert packer_version() == (1, 6, 6)
    assert packer_version() == (1, 6, 6)
    assert asked(bin_dir) == 2
