"""A new user's mistakes in roles, playbooks, inventories and tag templates: `validate`
names each by file and line, as Ansible's own loaders see it, and exits 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .firsthour import CASES, expected, make_project


def test_the_first_hour_project_validates(cli: Any, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    result = cli("-C", str(project), "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("ok (2 images: toolbox, site)\n")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_validate_names_the_file_and_line_of_bad_input(
    cli: Any, case: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", case)
    result = cli("-C", str(project), "validate")
    assert result.exit_code == 2, result.stdout
    assert result.stderr.splitlines() == expected(case)


def test_a_vaulted_file_is_fine_once_a_vault_password_is_given(cli: Any, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "vault-without-password")
    project = make_project(tmp_path / "project", case)
    password = tmp_path / "vault-password"
    password.write_text("pw\n")  # the case's vault.yml was encrypted with it
    result = cli("-C", str(project), "validate", "--vault-password-file", str(password))
    assert result.exit_code == 0, result.stderr


def test_a_wrong_vault_password_is_named_before_any_work(cli: Any, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "vault-without-password")
    project = make_project(tmp_path / "project", case)
    password = tmp_path / "vault-password"
    password.write_text("not-the-password\n")
    result = cli("-C", str(project), "validate", "--vault-password-file", str(password))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "inventories/group_vars/toolboxes/vault.yml:1:1: encrypted with Ansible Vault, and no "
        "vault password given decrypts it: check --vault-password-file / --vault-id"
    ]


def test_a_misspelt_extra_tag_is_named_before_any_work(cli: Any, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    result = cli("-C", str(project), "build", "toolbox", "--tag", "{{ git.shortsha }}")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "--tag: tag template '{{ git.shortsha }}' uses git.shortsha, which git does not have; "
        "did you mean 'short_sha'?"
    )


def test_several_problems_are_all_named_at_once(cli: Any, tmp_path: Path) -> None:
    """A YAML error in one role file does not hide a Jinja error in a template."""
    by_name = {c.name: c for c in CASES}
    project = make_project(tmp_path / "project", by_name["defaults-yaml"])
    make_project(tmp_path / "other", by_name["template-jinja"])
    template = "roles/motd/templates/motd.j2"
    (project / template).write_text((tmp_path / "other" / template).read_text())
    result = cli("-C", str(project), "validate")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        *expected(by_name["defaults-yaml"]),
        *expected(by_name["template-jinja"]),
    ]


def test_roles_that_requirements_install_are_left_to_the_build(cli: Any, tmp_path: Path) -> None:
    """Not installed yet when `validate` runs: neither missing nor a syntax error."""
    project = make_project(tmp_path / "project")
    (project / "requirements.yml").write_text(
        "---\nroles:\n  - src: git+file:///srv/git/ops-hello.git\n    name: hello\n"
    )
    spec = (project / "rolecast.yml").read_text()
    spec = spec.replace("roles: [motd]", "roles: [motd, hello]")
    (project / "rolecast.yml").write_text("requirements: requirements.yml\n" + spec)
    (project / "playbooks" / "site.yml").write_text("---\n- hosts: all\n  roles: [motd, hello]\n")
    result = cli("-C", str(project), "validate")
    assert result.exit_code == 0, result.stderr


def test_validate_says_which_images_need_a_version(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLECAST_VERSION", raising=False)
    project = make_project(tmp_path / "project")
    spec = project / "rolecast.yml"
    spec.write_text(spec.read_text().replace("tags: [latest]", 'tags: [latest, "{{ version }}"]'))
    result = cli("-C", str(project), "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "note: the tags of toolbox, site use {{ version }}: build, render and push need "
        "--version (or ROLECAST_VERSION)"
    ]


def test_a_passing_check_is_not_run_again_on_the_same_files(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestrator.checks as checks

    project = make_project(tmp_path / "project")
    assert cli("-C", str(project), "validate").exit_code == 0
    runs: list[int] = []
    monkeypatch.setattr(checks, "_check", lambda *args: runs.append(1))
    assert cli("-C", str(project), "validate").exit_code == 0
    assert runs == []  # nothing changed: the last pass stands
    defaults = project / "roles" / "motd" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "motd_extra: yes\n")
    assert cli("-C", str(project), "validate").exit_code == 0
    assert runs == [1]
