"""Tag templates."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.errors import UsageError
from orchestrator.tags import GitInfo, resolve_tags, sanitise

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
GIT = GitInfo(sha="0123456789abcdef0123456789abcdef01234567", branch="feature/Login Page")


def test_resolves_version_git_and_date() -> None:
    tags = resolve_tags(
        ["latest", "{{ version }}", "{{ git.short_sha }}", "{{ git.branch }}", "b{{ date }}"],
        version="1.4.2",
        git=GIT,
        now=NOW,
        image="web",
    )
    assert tags == ["latest", "1.4.2", "sha-0123456", "feature-login-page", "b20261123"]


def test_missing_version_is_an_input_error() -> None:
    with pytest.raises(UsageError) as info:
        resolve_tags(["{{ version }}"], version=None, git=GIT, now=NOW, image="web")
    assert str(info.value) == (
        "image web: tag template '{{ version }}': 'version' is undefined; pass --version"
    )


def test_invalid_result_names_the_template() -> None:
    with pytest.raises(UsageError, match=r"tag template '\{\{ version \}\}' gave 'a b'"):
        resolve_tags(["{{ version }}"], version="a b", git=GIT, now=NOW, image="web")


def test_duplicates_collapse() -> None:
    assert resolve_tags(["1", "{{ version }}"], version="1", git=GIT, now=NOW, image="x") == ["1"]


def test_sanitise() -> None:
    assert sanitise("Feature/ABC_1.2") == "feature-abc_1.2"
    assert sanitise("///") == "none"
