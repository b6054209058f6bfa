"""Tag templates."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.errors import UsageError
from orchestrator.tags import GitInfo, is_release, resolve_tags, sanitise, version_expansions

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
    assert tags == [
        "latest",
        "1.4.2",
        "1.4",
        "1",
        "sha-0123456",
        "feature-login-page",
        "b20261123",
    ]


def test_a_pre_release_gives_only_itself_and_never_moves_latest() -> None:
    tags = resolve_tags(
        ["latest", "{{ version }}", "v{{ version }}-slim"],
        version="1.5.0-rc.1",
        git=GIT,
        now=NOW,
        image="web",
    )
    assert tags == ["1.5.0-rc.1", "v1.5.0-rc.1-slim"]
    with pytest.raises(UsageError, match="no tag left: `latest` is not applied"):
        resolve_tags(["latest"], version="2.0.0-beta", git=GIT, now=NOW, image="web")
    assert resolve_tags(["latest"], version="2.0.0", git=GIT, now=NOW, image="x") == ["latest"]


def test_semver_expansion_keeps_a_prefix_and_leaves_other_schemes_alone() -> None:
    assert version_expansions("v2.3.4") == ["v2.3.4", "v2.3", "v2"]
    assert version_expansions("2026.11") == ["2026.11"]
    assert is_release("1.0.0") and not is_release("1.0.0-rc.1")
    assert is_release("2026.11") and is_release("1") and is_release("build-812")


def test_fingerprint_tag_is_short() -> None:
    tags = resolve_tags(
        ["fp-{{ fingerprint }}"], version=None, git=GIT, now=NOW, image="x", fingerprint="ab" * 32
    )
    assert tags == ["fp-abababababab"]


def test_an_over_long_tag_names_its_template() -> None:
    with pytest.raises(UsageError, match=r"tag template 'x\{\{ version \}\}' gave .*over 128"):
        resolve_tags(["x{{ version }}"], version="9" * 130, git=GIT, now=NOW, image="web")


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


def test_latest_moves_with_a_version_of_another_scheme() -> None:
    """CalVer or a build number is not a pre-release: `latest` goes with it."""
    for version in ("2026.11", "1", "build-812"):
        tags = resolve_tags(
            ["latest", "{{ version }}"], version=version, git=GitInfo(), now=NOW, image="web"
        )
        assert tags == ["latest", version]
    assert resolve_tags(["latest"], version="2026.11", git=GitInfo(), now=NOW, image="web") == [
        "latest"
    ]
