"""Everything a build will read, read before any work: `validate` runs these checks, and
`build` and `render` run them first. Each problem is one line, `FILE:LINE:COL: what: message`;
all of them make one SpecError (exit 2), so that no container starts on bad input.

`files` reads each role's YAML (tasks, handlers, vars, defaults, meta) with Ansible's own
loader and its templates with Jinja's parser; `plays` runs Ansible's syntax check of each
image's play through the API; the tag templates' use of `git.*` is checked against the
checkout here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import Problem, SpecError
from ..project import Project, ResolvedImage
from ..project.inventory import config_value, vars_files
from ..tags import GitInfo
from ..tagvars import uses
from .files import (
    is_vaulted,
    role_yaml_files,
    template_files,
    template_problem,
    vault_problems,
    yaml_problems,
)
from .memo import check_key, passed_before, remember_pass
from .plays import ansible_settings, play_problems
from .vault import wrong_password_problems

__all__ = ["check_project", "vault_password_given"]


def vault_password_given(root: Path, vault_arguments: Iterable[str]) -> bool:
    """Whether a build would have a vault password: flags, Ansible's variables, ansible.cfg."""
    if tuple(vault_arguments):
        return True
    if os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or os.environ.get(
        "ANSIBLE_VAULT_IDENTITY_LIST"
    ):
        return True
    return bool(
        config_value(root, "vault_password_file") or config_value(root, "vault_identity_list")
    )


def check_project(
    project: Project,
    *,
    vault_given: bool,
    git: GitInfo | None,
    images: Iterable[str] = (),
    vault_arguments: Iterable[str] = (),
) -> None:
    """Every problem in the files the images read; SpecError lists them all. Vaulted files
    are tried with `vault_arguments`, the build's own vault options, when given."""
    chosen = [project.images[n] for n in images] if images else list(project.images.values())
    arguments = tuple(vault_arguments)
    context = (str(vault_given), *arguments, str(git is not None and git.sha is not None))
    key = check_key(project, chosen, context)
    if passed_before(project, key):
        return
    _check(project, chosen, vault_given, git, arguments)
    remember_pass(project, key)


def _check(
    project: Project,
    chosen: list[ResolvedImage],
    vault_given: bool,
    git: GitInfo | None,
    vault_arguments: tuple[str, ...],
) -> None:
    problems = _tag_problems(project, chosen, git)
    with ansible_settings(project) as loader:
        problems += _file_problems(loader, project, chosen, vault_given, vault_arguments)
        seen = {(p.file, p.line) for p in problems}
        checked: set[str] = set()
        for image in chosen:
            if image.spec_name in checked:
                continue  # variants share the play; only their inventory differs
            checked.add(image.spec_name)
            for problem in play_problems(loader, project, image, vault_given):
                if (problem.file, problem.line) not in seen:
                    seen.add((problem.file, problem.line))
                    problems.append(problem)
    if problems:
        raise SpecError(problems)


def _read_by(images: list[ResolvedImage]) -> tuple[list[Path], list[Path], list[Path]]:
    """The role directories, playbooks and inventories of the images, each once."""
    roles: dict[Path, None] = {}
    playbooks: dict[Path, None] = {}
    inventories: dict[Path, None] = {}
    for image in images:
        for role in image.role_closure:
            if role.path.is_dir():
                roles[role.path] = None
        for playbook in (image.playbook, image.verify_playbook):
            if playbook is not None:
                playbooks[playbook] = None
        if image.inventory is not None:
            inventories[image.inventory] = None
    return list(roles), list(playbooks), list(inventories)


def _file_problems(
    loader: object,
    project: Project,
    images: list[ResolvedImage],
    vault_given: bool,
    vault_arguments: tuple[str, ...] = (),
) -> list[Problem]:
    root = project.root
    roles, playbooks, inventories = _read_by(images)
    problems: list[Problem] = []
    encrypted: list[Path] = []
    for role in roles:
        for path, what in role_yaml_files(role):
            encrypted.append(path)
            if not is_vaulted(path):
                problems += yaml_problems(loader, path, root, what)
        for path in template_files(role):
            encrypted.append(path)
            found = template_problem(path, root)
            if found is not None:
                problems.append(found)
        encrypted += [p for p in sorted((role / "files").rglob("*")) if p.is_file()]
    for playbook in playbooks:
        problems += yaml_problems(loader, playbook, root, "playbook")
        for kind in ("group_vars", "host_vars", "vars"):
            top = playbook.parent / kind
            encrypted += [p for p in sorted(top.rglob("*")) if p.is_file()] if top.is_dir() else []
    for inventory in inventories:
        encrypted += vars_files(inventory)
    if not vault_given:
        problems += vault_problems(list(dict.fromkeys(encrypted)), root)
    else:
        problems += wrong_password_problems(encrypted, vault_arguments, root)
    return problems


def _tag_problems(
    project: Project, images: list[ResolvedImage], git: GitInfo | None
) -> list[Problem]:
    """A tag template using `git.*` outside a git checkout: say so where it is written."""
    if git is None or git.sha is not None:
        return []
    spec = project.loaded.spec
    problems: list[Problem] = []
    names = {image.spec_name for image in images}
    places: list[tuple[tuple[str | int, ...], list[str]]] = []
    if any(spec.images[n].tags is None for n in names):
        places.append((("defaults", "tags"), list(spec.defaults.tags)))
    places += [(("images", n, "tags"), list(spec.images[n].tags or [])) for n in sorted(names)]
    for loc, templates in places:
        for index, text in enumerate(templates):
            if uses("git", text):
                problems.append(
                    project.loaded.problem(
                        (*loc, index),
                        f"tag template {text!r} uses git, but the project is not a git "
                        "checkout with a commit: build from one, or use another tag",
                    )
                )
    return problems
