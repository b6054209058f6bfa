"""The guarded `packer build` of one image: its output read into progress events, task
timings and a log, and every way it can end turned into a result or a clear error."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import (
    BuildFailedError,
    CommandFailedError,
    CommandTimeoutError,
    InterruptedBuildError,
)
from ..extra_vars import ENV_PREFIX, ExtraVars
from ..guard import Guard
from ..names import container_name
from ..packer_output import BuildState, parse, relative_origin, stage_of
from ..project import ResolvedImage
from ..report import LISTS_TASK, Phase, TaskTiming
from ..runner import run
from .context import Context
from .inputs import BuildInputs
from .recovery import Held, remove_leftovers


@dataclass
class PackerRun:
    """What Packer's output said: the committed image, notes, failures, the roles that ran."""

    state: BuildState = field(default_factory=BuildState)
    roles_run: list[str] = field(default_factory=list)


class OutputReader:
    """Turns each line Packer prints into the log, progress events and task timings."""

    def __init__(self, ctx: Context, image: ResolvedImage, sink: IO[str], run: PackerRun) -> None:
        self.ctx = ctx
        self.image = image
        self.sink = sink
        self.run = run
        self.role_names = [r.name for r in image.role_closure]
        self.task: tuple[str | None, str, float] | None = None

    def close_task(self) -> None:
        if self.task is not None:
            role, task, at = self.task
            if not task.startswith(LISTS_TASK):  # Rolecast's own wait, not the user's task
                seconds = time.monotonic() - at
                self.ctx.timings.append(TaskTiming(self.image.name, role, task, seconds))
            self.task = None

    def __call__(self, raw: str) -> None:
        ctx, name, state = self.ctx, self.image.name, self.run.state
        line = parse(raw)
        self.sink.write(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {line.text}\n")
        notes = len(state.notes)
        phase = state.feed(line)
        if len(state.notes) > notes:
            ctx.emit(name, Phase.NOTE, state.notes[-1])
        if phase == Phase.TASK:
            self.started_task()
        elif phase == Phase.SAVING_STAGE:
            self.close_task()
            ctx.emit(name, phase, stage_of(state.task))
        elif phase is not None:
            if phase != Phase.ANSIBLE:
                self.close_task()
            ctx.emit(name, phase)
        if ctx.options.verbose and line.text.strip():
            ctx.emit(name, Phase.OUTPUT, line=line.text)

    def started_task(self) -> None:
        state, roles_run = self.run.state, self.run.roles_run
        self.close_task()
        self.task = (state.role, state.task or "", time.monotonic())
        if state.role and state.role not in roles_run:
            roles_run.append(state.role)
        names = self.role_names
        self.ctx.emit(
            self.image.name,
            Phase.TASK,
            role=state.role,
            role_index=names.index(state.role) + 1 if state.role in names else None,
            role_count=len(names) or None,
            task=state.task,
        )


def packer_environment(
    extra_vars: ExtraVars | None = None, engine_path: list[str] | None = None
) -> dict[str, str]:
    """Registry credentials are Rolecast's, for pushes: Packer and Ansible never see them.
    The values of -e travel here, for the lookups of the template's ansible arguments.
    `engine_path` comes first on PATH: the engine's `docker` command (Podman's shim)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ROLECAST_REGISTRY_", ENV_PREFIX))
    }
    env |= extra_vars.environment() if extra_vars else {}
    first = [*(engine_path or []), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "")])
    env["CHECKPOINT_DISABLE"] = "1"
    env["PACKER_NO_COLOR"] = "1"
    return env


def run_packer(
    ctx: Context, image: ResolvedImage, inputs: BuildInputs, held: Held, into: PackerRun
) -> PackerRun:
    """Run Packer on the template, reading its output `into` a PackerRun (which says what
    ran even when the build fails); no container of the build survives it."""
    # Packer's own temporary files (the provisioner's inventory and key pair, its crash
    # log) go in a directory of the build's, removed after it: a killed Packer removes
    # none. Not in the build's directory: Packer's plugin sockets need a short path.
    scratch = Path(tempfile.mkdtemp(prefix=f"rolecast-{image.slug[:20]}-"))
    with inputs.log.open("a", encoding="utf-8", buffering=1) as sink:
        reader = OutputReader(ctx, image, sink, into)
        state = into.state
        try:
            run(
                ["packer", "build", "-color=false", inputs.template.name],
                timeout=ctx.options.timeout,
                on_line=reader,
                env=packer_environment(ctx.project.extra_vars, ctx.engine.packer_path())
                | {"TMPDIR": str(scratch)},
                cwd=inputs.build_dir,
                what=f"packer build of {image.name}",
                cancel=ctx.cancel,
                # Packer holds the image's lock too: if rolecast is killed, the next
                # build waits until this Packer has stopped and removed its container.
                pass_fds=() if held.lock_fd is None else (held.lock_fd,),
                # If rolecast dies, the guard logs what Packer still says and removes
                # the build container.
                guard=Guard(
                    log=inputs.log,
                    cleanup=tuple(
                        ctx.engine.removal_command(
                            container_name(ctx.identity, image.slug, inputs.build_id)
                        )
                    ),
                ),
            )
        except KeyboardInterrupt:
            remove_leftovers(ctx, inputs.build_id, untagged(state))
            raise InterruptedBuildError(
                f"build of {image.name} interrupted: its build container was removed "
                "and no tag was created or moved"
            ) from None
        except CommandTimeoutError as exc:
            remove_leftovers(ctx, inputs.build_id, untagged(state))
            raise BuildFailedError(
                f"image {image.name}: {exc}; log: {ctx.rel(inputs.log)}"
            ) from None
        except CommandFailedError as exc:
            remove_leftovers(ctx, inputs.build_id, untagged(state))
            raise BuildFailedError(
                failure_message(ctx, image, state, inputs.log, exc.returncode)
            ) from None
        finally:
            reader.close_task()
            shutil.rmtree(scratch, ignore_errors=True)
    remove_leftovers(ctx, inputs.build_id)
    return into


def untagged(state: BuildState) -> str | None:
    """A commit of a failed build that no tag holds: removed with the build."""
    return state.image_id if state.image_id and not state.tagged else None


# What Ansible or Packer says when the build container vanished under them.
CONTAINER_GONE = ("respondent Context has disconnected", "is not running", "No such container")
ENGINE_GRACE = 10.0  # seconds an engine that stops may still answer


def engine_gone(ctx: Context) -> bool:
    """Whether the engine stopped answering within ENGINE_GRACE: an engine that shuts
    down stops its containers first (so the build fails) and answers a moment longer."""
    deadline = time.monotonic() + ENGINE_GRACE
    while ctx.engine.ping():
        if time.monotonic() >= deadline:
            return False  # the container went on its own (killed, out of memory)
        time.sleep(0.25)
    return True


def failure_message(
    ctx: Context, image: ResolvedImage, state: BuildState, log: Path, returncode: int = 1
) -> str:
    """What failed, in order of what helps most: the engine gone, Packer killed, the task
    that failed, Ansible's own error, Packer's."""
    where = f"; log: {ctx.rel(log)}"
    said = [*state.packer_errors, state.ansible_error or ""]
    if state.failure is not None:
        said.append(state.failure.message)
    lost = any("Cannot connect to the Docker daemon" in text for text in said)
    if not lost and any(sign in text for text in said for sign in CONTAINER_GONE):
        lost = engine_gone(ctx)
    if lost or not ctx.engine.ping():
        return (
            f"image {image.name}: the Docker engine ({ctx.engine.address}) stopped answering "
            "during the build; no tag was created or moved, the last good image is kept. Start "
            f"the engine and build again (what this build left is removed then){where}"
        )
    if returncode > 128:
        try:
            name = signal.Signals(returncode - 128).name
        except ValueError:
            name = f"signal {returncode - 128}"
        return (
            f"image {image.name}: packer was killed ({name}); its build container was "
            f"removed and no tag was created or moved{where}"
        )
    if state.failure is not None:
        role = f"role {state.failure.role}, " if state.failure.role else ""
        task = state.failure.task or "?"
        origin = state.failure.origin
        at = f" at {relative_origin(origin, ctx.root)}" if origin else ""
        return f"image {image.name}: {role}task '{task}' failed{at}: {state.failure.message}{where}"
    if state.ansible_error is not None:
        hint = ""
        if "vault secret" in state.ansible_error:
            hint = "; pass --vault-password-file or --vault-id"
        at = f" ({relative_origin(state.origin, ctx.root)})" if state.origin else ""
        return f"image {image.name}: ansible-playbook: {state.ansible_error}{at}{hint}{where}"
    errors = [e for e in state.packer_errors if not e.startswith("Build '")]
    detail = errors[0] if errors else (state.packer_errors or ["packer build failed"])[-1]
    return f"image {image.name}: packer: {detail}{where}"
