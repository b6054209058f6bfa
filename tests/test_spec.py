"""The spec: golden valid and invalid files, exact messages, and the loader's edge cases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import Spec, load_spec
from orchestrator.yamlsource import load_yaml

from .conftest import DATA, ROOT

INVALID = sorted((DATA / "invalid").glob("*.yml"))
VALID = sorted((DATA / "valid").glob("*.yml"))


def expected_lines(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ")
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_exits_2_with_exact_message(cli: Any, path: Path) -> None:
    expected = expected_lines(path)
    assert expected, f"{path} has no '# expect:' line"
    result = cli("-f", str(path.relative_to(ROOT)), "validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == expected
    assert "Traceback" not in result.output


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_spec_exits_0(cli: Any, path: Path) -> None:
    result = cli("-f", str(path.relative_to(ROOT)), "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{path.relative_to(ROOT)}: ok")


def test_example_project_validates(cli: Any) -> None:
    result = cli("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        "rolecast.yml: ok (5 images: base, web@staging, web@production, app, db)"
    )


def test_full_spec_values_are_normalised() -> None:
    spec = load_spec(ROOT, DATA / "valid" / "full.yml").spec
    app = spec.images["app"]
    assert app.from_ == "base"
    assert [r.role for r in app.roles] == ["python_runtime", "app"]
    assert app.roles[1].vars == {"app_port": 9000}
    # A string command is Docker's shell form; YAML numbers become env text.
    assert app.config.cmd == ["/bin/sh", "-c", "python3 /srv/app/app.py"]
    assert app.config.entrypoint == ["/usr/bin/env"]
    assert app.config.env == {"DEBUG": "1", "QUOTED": 'say "hi" to ${USER}'}
    assert app.config.expose == ["9000", "9001/udp"]
    assert spec.defaults.registry == "localhost:5000/team"
    assert spec.bases["debian-bookworm"].include == ["python3", "python3-apt"]


def test_defaults_apply_when_keys_are_absent() -> None:
    spec = Spec.model_validate({"version": 1, "images": {"a": {"from": "debian:12"}}})
    assert spec.defaults.tags == ["latest"]
    assert spec.defaults.connection == "auto"
    assert spec.roles_path == ["roles"]
    assert spec.images["a"].config.cleanup is True
    assert spec.images["a"].config.keep_ansible_deps is False


def test_several_problems_are_all_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "rolecast.yml"
    path.write_text(
        "version: 1\n"
        "images:\n"
        "  web:\n"
        "    from: debian:12\n"
        "    config:\n"
        "      workdir: srv\n"
        "    tgas: [x]\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    lines = [str(p).split(" ", 1)[1] for p in info.value.problems]
    assert lines == [
        "images.web.config.workdir: 'srv' must be an absolute path, e.g. /srv/app",
        "images.web.tgas: unknown key 'tgas'; did you mean 'tags'?",
    ]
    assert [p.line for p in info.value.problems] == [6, 7]


def test_unknown_key_without_a_close_match_lists_the_valid_keys(tmp_path: Path) -> None:
    path = tmp_path / "rolecast.yml"
    path.write_text("version: 1\nimages:\n  a: {from: 'debian:12'}\nzzz: 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert str(info.value).endswith(
        "zzz: unknown key 'zzz'; valid keys: version, defaults, inventory, roles_path, "
        "requirements, packer_plugins, bases, images"
    )


def test_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert "file not found; create it with `rolecast init`" in str(info.value)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "rolecast.yml").write_text("# nothing yet\n")
    with pytest.raises(SpecError, match="the file is empty"):
        load_spec(tmp_path)


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "rolecast.yml"
    path.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(SpecError, match="more than 100000 YAML nodes"):
        load_yaml(path)
    assert time.monotonic() - started < 10


def test_binary_junk_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rolecast.yml"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_yaml(path)


def test_positions_point_at_keys_and_values(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("top:\n  list:\n    - one\n    - two: 2\n")
    doc = load_yaml(path, "x.yml")
    assert doc.position(("top", "list", 1, "two")) == (4, 12)
    assert doc.position(("top", "list", 1, "two"), key=True) == (4, 7)
    assert doc.position(("top", "list", 0)) == (3, 7)
    # A path that is not in the file falls back to its nearest existing parent.
    assert doc.position(("top", "list", 1, "missing")) == (4, 7)


def test_control_character_is_located(tmp_path: Path) -> None:
    path = tmp_path / "rolecast.yml"
    path.write_text("version: 1\nimages:\n  w:\n    env: \x01\n")
    with pytest.raises(SpecError) as info:
        load_yaml(path, "rolecast.yml")
    assert str(info.value) == "rolecast.yml:4:10: invalid YAML: character '\\x01' not allowed"


def test_wrong_types_read_as_plain_words(tmp_path: Path) -> None:
    (tmp_path / "rolecast.yml").write_text("version: 1\nimages: {web: null}\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert str(info.value) == (
        "rolecast.yml:2:15 images.web: input should be a valid dictionary, got nothing"
    )


@pytest.mark.parametrize(
    ("value", "repository", "problem"),
    [
        ("localhost:5000/team", False, None),
        ("registry.example.com", False, None),
        ("registry.example.com:443/a/b", True, None),
        ("team", False, None),
        ("localhost:5000", True, "is not a registry repository; write HOST[:PORT]/PATH"),
        ("Bad Host!/x", False, "is not a registry prefix"),
        ("a//b", False, "is not a registry prefix"),
        ("localhost:99999/x", False, "port 99999 is out of range (1-65535)"),
        ("localhost:0/x", False, "port 0 is out of range"),
        ("UPPER/x", False, "Docker reads 'UPPER' as a path"),
        ("Registry.Example/x", False, None),
    ],
)
def test_registry_names_are_checked_as_docker_reads_them(
    value: str, repository: bool, problem: str | None
) -> None:
    from orchestrator.spec import registry_problem

    found = registry_problem(value, repository=repository)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
