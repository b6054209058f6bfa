"""Ansible's syntax check through its API: the play a build runs for an image is loaded as
`ansible-playbook --syntax-check` loads it (roles with their tasks, handlers, vars, defaults
and meta dependencies; static imports; playbooks), in this process and without a host."""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import re
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import Problem
from ..project import Project, ResolvedImage
from .origin import ansible_problem

# Ansible's loaders read process-wide settings (the roles path): one check at a time.
_LOCK = threading.Lock()
_CONFLICT = re.compile(r"conflicting action statements: ([\w.]+), ([\w.]+)")
_UNRESOLVED = re.compile(r"couldn't resolve module/action '([\w.]+)'")
_VAULT = re.compile(r"vault", re.I)
_ROLE_MISSING = re.compile(r"the role '[^']+' was not found")


@contextlib.contextmanager
def ansible_settings(project: Project) -> Iterator[Any]:
    """A DataLoader whose roles path is the project's, Ansible's printing kept quiet."""
    import ansible.constants as C
    from ansible.parsing.dataloader import DataLoader

    with _LOCK:
        _plugin_loader(tuple(str(p) for p in project.collections_paths))
        saved = C.DEFAULT_ROLES_PATH
        C.DEFAULT_ROLES_PATH = [str(p) for p in project.roles_paths]
        loader = DataLoader()
        loader.set_basedir(str(project.root))
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield loader
        finally:
            C.DEFAULT_ROLES_PATH = saved


@functools.cache
def _plugin_loader(collections: tuple[str, ...]) -> None:
    """Ansible's plugin loader, once per process (as ansible-playbook sets it up): a second
    project in the same process (the tests) keeps the first one's collections."""
    from ansible.plugins.loader import init_plugin_loader

    if _plugin_loader.cache_info().currsize == 0:
        init_plugin_loader(list(collections))


def play_problems(
    loader: Any, project: Project, image: ResolvedImage, vault_given: bool
) -> list[Problem]:
    """What Ansible's syntax check says of the image's play (or playbook): its first error,
    the way Ansible stops at it, or nothing."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.playbook import Playbook
    from ansible.playbook.play import Play
    from ansible.vars.manager import VariableManager

    variables = VariableManager(loader=loader, inventory=InventoryManager(loader, ["localhost,"]))
    problems = []
    try:
        if image.playbook is not None:
            Playbook.load(str(image.playbook), variable_manager=variables, loader=loader)
        elif image.roles and all(role.path.is_dir() for role in image.role_closure):
            # (a role that `requirements:` installs is not here yet: the build checks it)
            data = {"hosts": "all", "gather_facts": False, "roles": [r.role for r in image.roles]}
            Play.load(data, variable_manager=variables, loader=loader)
        if image.verify_playbook is not None:
            Playbook.load(str(image.verify_playbook), variable_manager=variables, loader=loader)
    except AnsibleError as exc:
        if not _ignored(str(exc), project, vault_given):
            problem = ansible_problem(exc, project.root, "Ansible syntax check")
            if not problem.file:  # Ansible gave no origin: name the image that reads it
                key = "playbook" if image.playbook is not None else "roles"
                located = project.loaded.problem(("images", image.spec_name, key), "")
                problem = Problem(
                    located.file, located.line, located.column, located.path, problem.message
                )
            problems.append(_with_hint(problem))
    return problems


def _ignored(message: str, project: Project, vault_given: bool) -> bool:
    """Errors the check cannot judge: what a build installs (requirements) or decrypts."""
    if vault_given and _VAULT.search(message):
        return True
    if project.requirements is not None and _ROLE_MISSING.search(message):
        return True  # installed by requirements at build time
    unresolved = _UNRESOLVED.search(message)
    if unresolved is not None:
        name = unresolved.group(1)
        builtin = "." not in name or name.startswith(("ansible.builtin.", "ansible.legacy."))
        return not builtin and project.requirements is not None
    return False


def _with_hint(problem: Problem) -> Problem:
    """`conflicting action statements: debug, notfy` is a misspelt keyword: say which."""
    found = _CONFLICT.search(problem.message)
    if found is None:
        return problem
    from ansible.playbook.handler import Handler
    from ansible.playbook.task import Task

    keywords = sorted(set(Task.fattributes) | set(Handler.fattributes))
    for name in found.groups():
        close = difflib.get_close_matches(name, keywords, n=1, cutoff=0.75)
        if close and name not in keywords:
            message = (
                f"{problem.message}; {name!r} is not a task keyword: did you mean {close[0]!r}?"
            )
            return Problem(problem.file, problem.line, problem.column, problem.path, message)
    return problem
