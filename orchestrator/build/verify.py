"""The gates between a build's commit and its tags: the idempotence run, then verify.
Tags move only when both pass; a failed candidate is kept as `TAG-failed`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .. import gates, render
from ..errors import BuildFailedError
from ..names import container_name
from ..project import ResolvedImage
from ..report import Phase
from ..tools import community_docker_installed, mitogen_strategy_dir
from .context import Context
from .inputs import BuildInputs
from .recovery import drop_candidate, remove_leftovers


def gated(ctx: Context, image: ResolvedImage) -> bool:
    return image.spec.verify is not None or image.spec.idempotence or ctx.options.idempotence


def gate_playbook(image: ResolvedImage, inp: render.RenderInput) -> Path:
    """The playbook a gate re-applies: the image's own, or all its roles (never only the
    roles a resumed build ran)."""
    if image.playbook is not None:
        return inp.playbook
    return inp.playbook.with_name("gate-playbook.yml")


def gate_setup(
    inp: render.RenderInput,
    extra_env: dict[str, str] | None = None,
    engine_path: list[str] | None = None,
) -> gates.AnsibleSetup | None:
    """Ansible for a gate container: the build's inventory, vars and vault; no proxy."""
    connection, strategy = inp.connection, inp.mitogen_strategy_dir
    if connection == "proxy":
        strategy = mitogen_strategy_dir()
        if strategy is not None:
            connection = "mitogen"
        elif community_docker_installed():
            connection = "docker"
        else:
            return None
    gate = replace(inp, connection=connection, mitogen_strategy_dir=strategy)
    return gates.AnsibleSetup(
        alias=inp.host_alias,
        groups=list(inp.groups),
        inventory=inp.inventory,
        env=dict(e.split("=", 1) for e in render.ansible_env(gate)),
        extra_vars_file=inp.extra_vars_file,
        vault_arguments=list(inp.vault_arguments),
        ansible_playbook=inp.ansible_playbook,
        plugin="docker" if connection == "mitogen" else "community.docker.docker",
        extra_arguments=tuple(inp.extra_vars_arguments),
        extra_env=extra_env or {},
        engine_path=tuple(engine_path or ()),
    )


def check(ctx: Context, image: ResolvedImage, inputs: BuildInputs, image_id: str) -> list[str]:
    """Idempotence, then verify, on containers of the candidate; notes on what passed."""
    setup = gate_setup(inputs.inp, ctx.project.extra_vars.environment(), ctx.engine.packer_path())
    named = container_name(ctx.identity, image.slug, inputs.build_id)
    notes = []
    if image.spec.idempotence or ctx.options.idempotence:
        ctx.emit(image.name, Phase.IDEMPOTENCE)
        gates.idempotence(
            ctx.engine,
            image,
            image_id,
            inputs.build_id,
            setup,
            gate_playbook(image, inputs.inp),
            ctx.root,
            timeout=ctx.options.timeout,
            container_name=f"{named}-idempotence",
        )
        notes.append("idempotence: no task changed on a second run")
    if image.spec.verify is not None:
        ctx.emit(image.name, Phase.VERIFYING)
        gates.verify(
            ctx.engine,
            image,
            image_id,
            inputs.build_id,
            setup,
            ctx.root,
            timeout=ctx.options.timeout,
            container_name=f"{named}-verify",
        )
        notes.append("verify: passed")
    return notes


def run_gates(ctx: Context, image: ResolvedImage, inputs: BuildInputs, image_id: str) -> list[str]:
    """The gates, then the tags; whatever happens, the candidate tag goes."""
    assert inputs.candidate is not None
    engine = ctx.engine
    try:
        notes = check(ctx, image, inputs, image_id)
        if ctx.cancel.is_set():
            raise KeyboardInterrupt  # interrupted while the gates ran: no tag moves
    except BuildFailedError as exc:
        kept = f"{image.repository}:{inputs.final_tags[0]}-failed"
        engine.tag(image_id, kept)
        drop_candidate(ctx, image, inputs.candidate)
        raise BuildFailedError(f"{exc}; no tag was moved; the image is kept as {kept}") from None
    except BaseException:
        remove_leftovers(ctx, inputs.build_id)
        drop_candidate(ctx, image, inputs.candidate)
        raise
    ctx.emit(image.name, Phase.TAGGING)
    for tag in inputs.final_tags:
        engine.tag(image_id, f"{image.repository}:{tag}")
    drop_candidate(ctx, image, inputs.candidate)
    return notes
