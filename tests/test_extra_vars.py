"""-e/--extra-vars: read as ansible-playbook reads them; values only in the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import UsageError
from orchestrator.extra_vars import FileVars, InlineVars, parse_extra_vars
from orchestrator.fingerprint import Manifest, first_change, image_manifest
from orchestrator.project import load_project

SECRET = "hunter2-s3cr3t"


def test_every_form_ansible_playbook_reads(tmp_path: Path) -> None:
    (tmp_path / "more.yml").write_text("from_file: 1\n")
    extra = parse_extra_vars(
        ["a=1 b='two words'", '{"c": [1, 2], "d": {"e": null}}', "@more.yml", "g=x"],
        tmp_path,
    )
    first, second, third, fourth = extra.items
    assert isinstance(first, InlineVars) and first.values == {"a": "1", "b": "two words"}
    assert isinstance(second, InlineVars) and second.values == {"c": [1, 2], "d": {"e": None}}
    assert third == FileVars((tmp_path / "more.yml").resolve(), "more.yml")
    assert isinstance(fourth, InlineVars) and fourth.values == {"g": "x"}
    env = extra.environment()
    assert env == {
        "ROLECAST_EV_0": '"1"',
        "ROLECAST_EV_1": '"two words"',
        "ROLECAST_EV_2": "[1, 2]",
        "ROLECAST_EV_3": '{"e": null}',
        "ROLECAST_EV_4": '"x"',
    }
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    (build_dir / "extra-vars-9.json").write_text("{}")  # from an earlier build: removed
    extra.write_lookups(build_dir)
    assert sorted(p.name for p in build_dir.iterdir()) == [
        "extra-vars-1.json",
        "extra-vars-2.json",
        "extra-vars-4.json",
    ]
    assert extra.arguments(build_dir) == [
        "-e",
        f"@{build_dir / 'extra-vars-1.json'}",
        "-e",
        f"@{build_dir / 'extra-vars-2.json'}",
        "-e",
        f"@{(tmp_path / 'more.yml').resolve()}",
        "-e",
        f"@{build_dir / 'extra-vars-4.json'}",
    ]
    assert json.loads((build_dir / "extra-vars-1.json").read_text()) == {
        "a": "{{ lookup('env', 'ROLECAST_EV_0') | from_json }}",
        "b": "{{ lookup('env', 'ROLECAST_EV_1') | from_json }}",
    }


def test_values_appear_in_no_argument_no_file_and_no_repr(tmp_path: Path) -> None:
    extra = parse_extra_vars([f"password={SECRET}", json.dumps({"token": SECRET})], tmp_path)
    extra.write_lookups(tmp_path)
    assert SECRET not in " ".join(extra.arguments(tmp_path))
    assert not any(SECRET in p.read_text() for p in tmp_path.iterdir())
    assert SECRET not in repr(extra)
    assert all(SECRET in v for v in extra.environment().values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@missing.yml", "-e @missing.yml: no such file"),
        ("./vars.yml", "-e ./vars.yml: to read variables from a file, write -e @./vars.yml"),
        (f"{{password: '{SECRET}'", "the 1st -e: not valid YAML or JSON"),
        (f"[{SECRET}]", "the 1st -e: give a mapping"),
        (SECRET, "the 1st -e: give KEY=VALUE"),
    ],
)
def test_bad_extra_vars_are_bad_input_without_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_extra_vars([text], tmp_path)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


def _project(root: Path) -> Path:
    (root / "roles" / "hello" / "tasks").mkdir(parents=True)
    (root / "roles" / "hello" / "tasks" / "main.yml").write_text(
        "- ansible.builtin.copy:\n    content: '{{ greeting }}'\n    dest: /greeting\n"
    )
    (root / "rolecast.yml").write_text(
        "version: 1\nimages:\n  one:\n    from: debian:12\n    roles: [hello]\n"
    )
    return root


def _manifest(root: Path, *texts: str) -> Manifest:
    project = load_project(root, extra_vars=parse_extra_vars(list(texts), root))
    return image_manifest(project, project.images["one"], "sha256:parent")


def test_extra_vars_change_the_fingerprint_of_the_stage_that_reads_them(tmp_path: Path) -> None:
    root = _project(tmp_path)
    plain = _manifest(root)
    hello = _manifest(root, "greeting=hello")
    other = _manifest(root, f"greeting={SECRET}")
    unread = _manifest(root, "nobody_reads_this=1")
    assert len({plain.fingerprint, hello.fingerprint, other.fingerprint}) == 3
    assert unread.fingerprint == plain.fingerprint
    assert first_change(hello, other) == "-e: greeting changed"
    assert first_change(plain, hello) == "-e: greeting was added"
    assert SECRET not in json.dumps(other.as_dict())


def test_an_extra_vars_file_counts_by_content(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "extra.yml").write_text("greeting: one\n")
    before = _manifest(root, "@extra.yml")
    (root / "extra.yml").write_text("greeting: two\n")
    after = _manifest(root, "@extra.yml")
    assert first_change(before, after) == "-e @extra.yml: greeting changed"
    (root / "extra.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    vaulted = _manifest(root, "@extra.yml")
    assert first_change(after, vaulted) == "-e @extra.yml was added"


def test_an_extra_vars_file_ansible_would_refuse_is_bad_input_by_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("greeting: hello\nsecret: [s3cret\n")
    listed = tmp_path / "list.yml"
    listed.write_text("- one\n")
    tagged = tmp_path / "tagged.yml"
    tagged.write_text("token: !vault |\n  0011\nname: !unsafe '{{ x }}'\n")
    with pytest.raises(UsageError) as info:
        parse_extra_vars(["@bad.yml"], cwd=tmp_path)
    assert str(info.value).startswith("-e @bad.yml: bad.yml:3:1: invalid YAML: ")
    assert "s3cret" not in str(info.value)
    with pytest.raises(UsageError) as info:
        parse_extra_vars(["@list.yml"], cwd=tmp_path)
    assert str(info.value) == (
        "-e @list.yml: variables must be a mapping of names to values, not a list"
    )
    assert parse_extra_vars(["@tagged.yml"], cwd=tmp_path)
