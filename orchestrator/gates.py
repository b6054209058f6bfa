"""Gates between a committed image and its tags: verify checks and the idempotence run.

Both start a container of the candidate image (labelled like a build container, removed
afterwards) and drive Ansible through ansible-runner, reading its structured events.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import provision, render
from .engines import Container, Engine
from .errors import BuildFailedError, ToolMissingError
from .project import ResolvedImage
from .spec import Services

Say = Callable[[str], None]


@dataclass(frozen=True)
class AnsibleSetup:
    """How to run Ansible against a gate container, as the build ran it."""

    alias: str
    groups: list[str]
    inventory: Path | None
    env: dict[str, str]
    extra_vars_file: Path  # the spec's vars, as the build read them
    vault_arguments: list[str]
    ansible_playbook: str
    plugin: str  # the connection plugin name for a container: docker or community.docker.docker
    # -e of the run: ansible-playbook arguments (lookups, @FILE) and the values they look up
    extra_arguments: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)
    # first on PATH: the engine's `docker` command, for the docker connection (Podman's shim)
    engine_path: tuple[str, ...] = ()


def _scratch() -> str:
    """ansible-runner writes the environment (with the values of -e) into its artifacts:
    in memory (tmpfs) where there is one, removed after the run."""
    shm = Path("/dev/shm")
    usable = shm.is_dir() and os.access(shm, os.W_OK)
    return tempfile.mkdtemp(prefix="rolecast-gate-", dir=str(shm) if usable else None)


def inventory_text(alias: str, groups: list[str]) -> str:
    if not groups:
        return f"{alias}\n"
    return "".join(f"[{group}]\n{alias}\n\n" for group in groups)


def start_container(
    engine: Engine,
    image_id: str,
    build_id: str,
    name: str,
    run: bool,
    container: str | None = None,
) -> Container:
    """A container of the candidate: its own command when `run`, else a shell that waits."""
    labels = {render.BUILD_LABEL: build_id, render.IMAGE_LABEL: name}
    if run:
        return engine.run(image_id, name=container, labels=labels)
    return engine.run(
        image_id,
        ["/bin/sh"],
        name=container,
        entrypoint="",
        user="0",
        labels=labels,
        interactive=True,
    )


def run_playbook(
    setup: AnsibleSetup, container_id: str, playbook: Path, *, timeout: float
) -> list[dict[str, Any]]:
    """Run `playbook` against the container with ansible-runner; returns its events."""
    import ansible_runner

    work = Path(_scratch())
    try:
        inventories = [str(work / "build-host")]
        (work / "build-host").write_text(inventory_text(setup.alias, setup.groups))
        if setup.inventory is not None:
            inventories.append(str(setup.inventory))
        # As the build orders them: the spec's vars, then -e, then the connection (a file,
        # as in the build, so that a Jinja value of the spec is a template there too).
        cmdline = [*setup.vault_arguments, "-e", f"@{setup.extra_vars_file}"]
        cmdline += setup.extra_arguments
        extra = {
            "ansible_connection": setup.plugin,
            "ansible_host": container_id,
            "ansible_user": "root",
            "ansible_python_interpreter": render.INTERPRETER,
        }
        env = dict(setup.env) | setup.extra_env
        # ansible-runner finds ansible-playbook on PATH: the one the build used goes first.
        first = [*setup.engine_path, str(Path(setup.ansible_playbook).parent)]
        env["PATH"] = os.pathsep.join([*first, os.environ["PATH"]])
        result = ansible_runner.run(
            private_data_dir=str(work),
            playbook=str(playbook),
            inventory=inventories,
            limit=setup.alias,
            extravars=extra,
            envvars=env,
            cmdline=shlex.join(cmdline),
            suppress_env_files=True,
            quiet=True,
            timeout=int(timeout),
        )
        events = [e for e in result.events if isinstance(e, dict)]
        if result.status == "timeout":
            raise BuildFailedError(f"{playbook.name} did not finish within {timeout:.0f} s")
        errors = [e.get("stdout", "") for e in events if e.get("event") in ("error", "verbose")]
        if result.status not in ("successful", "failed") or (
            result.rc != 0 and not _failures(events)
        ):
            detail = _last_error(errors) or f"ansible-playbook exited {result.rc}"
            raise BuildFailedError(f"{playbook.name}: {detail}")
        return events
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _last_error(lines: list[str]) -> str:
    for text in reversed(lines):
        for line in reversed(text.splitlines()):
            if "ERROR" in line:
                return line.split("]: ", 1)[-1].removeprefix("ERROR! ").strip()
    return ""


def _failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
        and not e.get("event_data", {}).get("ignore_errors")
    ]


def _where(data: dict[str, Any], root: Path) -> str:
    role = data.get("role")
    task = data.get("task") or "?"
    path = str(data.get("task_path") or "")
    try:
        path = str(Path(path.rsplit(":", 1)[0]).relative_to(root)) + ":" + path.rsplit(":", 1)[1]
    except (ValueError, IndexError):
        pass
    text = f"role {role}, task '{task}'" if role else f"task '{task}'"
    return f"{text} ({path})" if path else text


def failure_message(events: list[dict[str, Any]], root: Path) -> str | None:
    failed = _failures(events)
    if not failed:
        return None
    data = failed[0].get("event_data", {})
    res = data.get("res") or {}
    msg = res.get("msg") or res.get("stderr") or "failed"
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg)
    return f"{_where(data, root)}: {str(msg).strip()}"


SERVICE_MODULES = {"service", "sysvinit", "systemd", "systemd_service", "openrc"}
RUN_STATES = {"started", "restarted", "reloaded"}


def _only_runs_a_service(data: dict[str, Any]) -> bool:
    """A service started in the second container: no service runs in a fresh container of
    an image, so this is not a change the image lacks (an `enabled` change still counts)."""
    action = str(data.get("task_action") or "").rsplit(".", 1)[-1]
    res = data.get("res") or {}
    if action not in SERVICE_MODULES:
        return False
    raw = res.get("status")
    status: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ran = res.get("state") in RUN_STATES or any(
        isinstance(status.get(state), dict) and status[state].get("changed") for state in RUN_STATES
    )
    enabled = status.get("enabled")
    return ran and not (isinstance(enabled, dict) and enabled.get("changed"))


def changed_tasks(events: list[dict[str, Any]], root: Path) -> list[str]:
    """Tasks that reported a change, each once, as `role R, task 'T' (file:line)`."""
    found: list[str] = []
    for event in events:
        if event.get("event") != "runner_on_ok":
            continue
        data = event.get("event_data", {})
        if (data.get("res") or {}).get("changed") and not _only_runs_a_service(data):
            where = _where(data, root)
            if where not in found:
                found.append(where)
    return found


def bootstrap(container: Container, services: Services) -> None:
    """Put back what Ansible needs and the clean-up took away (python3-apt), and the
    build's service manager."""
    if services == "run":
        tools = {name: path.read_bytes() for name, path in provision.service_tools().items()}
        container.put(provision.TOOLS_DIR, tools)
    script = "\n".join(provision.bootstrap_script(services)).replace(
        provision.BOOTSTRAP_RECORD, "/dev/null"
    )
    code, output = container.exec(["/bin/sh", "-c", script], user="0")
    if code != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise BuildFailedError(f"could not prepare the container for Ansible: {tail[0]}")


def verify(
    engine: Engine,
    image: ResolvedImage,
    image_id: str,
    build_id: str,
    setup: AnsibleSetup | None,
    root: Path,
    *,
    timeout: float,
    container_name: str | None = None,
) -> None:
    """Run the image's verify checks; BuildFailedError names the first that failed."""
    spec = image.spec.verify
    assert spec is not None
    container = start_container(engine, image_id, build_id, image.slug, spec.run, container_name)
    try:
        for command in spec.commands:
            code, output = container.exec(["/bin/sh", "-c", command], user="0")
            if code != 0:
                text = output.decode(errors="replace").strip().splitlines()
                detail = text[-1] if text else "no output"
                raise BuildFailedError(
                    f"image {image.name}: verify command failed (exit {code}): {command}: {detail}"
                )
        if image.verify_playbook is not None:
            if setup is None:
                raise ToolMissingError(_NO_CONNECTION)
            events = run_playbook(setup, container.id, image.verify_playbook, timeout=timeout)
            failed = failure_message(events, root)
            if failed is not None:
                raise BuildFailedError(f"image {image.name}: verify failed: {failed}")
    finally:
        container.remove()


def idempotence(
    engine: Engine,
    image: ResolvedImage,
    image_id: str,
    build_id: str,
    setup: AnsibleSetup | None,
    playbook: Path,
    root: Path,
    *,
    timeout: float,
    container_name: str | None = None,
) -> None:
    """Apply the roles again to a container of the image; any change fails the gate."""
    if setup is None:
        raise ToolMissingError(_NO_CONNECTION)
    container = start_container(
        engine, image_id, build_id, image.slug, run=False, container=container_name
    )
    try:
        bootstrap(container, image.services)
        events = run_playbook(setup, container.id, playbook, timeout=timeout)
        failed = failure_message(events, root)
        if failed is not None:
            raise BuildFailedError(f"image {image.name}: second run failed: {failed}")
        changed = changed_tasks(events, root)
        if changed:
            raise BuildFailedError(
                f"image {image.name}: not idempotent: {len(changed)} task(s) changed on a "
                f"second run: {'; '.join(changed)}"
            )
    finally:
        container.remove()


_NO_CONNECTION = (
    "verify and idempotence runs reach the container with mitogen or community.docker; "
    "neither is installed"
)
