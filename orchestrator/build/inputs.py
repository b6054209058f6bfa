"""What one build hands Packer: the render input, the generated playbook and vars, the
template, written into `.rolecast/build/IMAGE/`."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from .. import __version__, provision, render
from ..errors import ToolMissingError, UsageError
from ..fingerprint import Manifest, stage_roles
from ..names import FINGERPRINT_LABEL, candidate_repository, host_alias
from ..project import Project, ResolvedImage
from ..report import Phase
from ..tools import community_docker_installed, mitogen_strategy_dir
from .context import Context
from .preflight import ansible_playbook
from .stages import Start, stage_at

FINGERPRINT_PLACEHOLDER = "unset"  # what `rolecast render` shows before a build


def vault_arguments(password_files: list[Path], vault_ids: list[str]) -> tuple[str, ...]:
    """ansible-playbook arguments naming vault secrets by path; a missing file is bad input."""
    args: list[str] = []
    for path in password_files:
        if not path.is_file():
            raise UsageError(f"--vault-password-file {path}: no such file")
        args.append(f"--vault-password-file={path.resolve()}")
    for vault_id in vault_ids:
        label, sep, source = vault_id.rpartition("@")
        if not sep:
            label, source = "", vault_id
        if source == "prompt":
            raise UsageError(
                f"--vault-id {vault_id}: a build cannot prompt; give a password file or script"
            )
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"--vault-id {vault_id}: no such file {source}")
        args.append(f"--vault-id={label + '@' if label else ''}{path.resolve()}")
    return tuple(args)


def choose_connection(wanted: str) -> tuple[str, Path | None]:
    """The Ansible connection to use; `auto` takes the fastest one available here."""
    strategy = mitogen_strategy_dir()
    if wanted == "mitogen" and strategy is None:
        raise ToolMissingError("connection mitogen: mitogen is not installed (pip install mitogen)")
    if wanted == "docker" and not community_docker_installed():
        raise ToolMissingError(
            "connection docker: the community.docker collection is not installed "
            "(ansible-galaxy collection install community.docker), or use connection: mitogen"
        )
    if wanted == "auto":
        if strategy is not None:
            return "mitogen", strategy
        return ("docker", None) if community_docker_installed() else ("proxy", None)
    return wanted, strategy if wanted == "mitogen" else None


def labels(ctx: Context, image: ResolvedImage, tags: list[str]) -> dict[str, str]:
    """OCI labels and Rolecast's own, then the spec's (which win)."""
    project, git, now = ctx.project, ctx.rules.git, ctx.rules.now
    found: dict[str, str] = {
        "org.opencontainers.image.title": image.spec_name,
        "org.opencontainers.image.version": ctx.options.version or tags[0],
        "org.opencontainers.image.created": now.isoformat().replace("+00:00", "Z"),
    }
    if image.spec.description:
        found["org.opencontainers.image.description"] = image.spec.description
    if git.sha:
        found["org.opencontainers.image.revision"] = git.sha
    if git.remote:
        found["org.opencontainers.image.source"] = git.remote
    found |= {
        "io.rolecast.version": __version__,
        "io.rolecast.roles": ",".join(r.name for r in image.role_closure),
    }
    if image.variant is not None:
        found["io.rolecast.variant"] = image.variant
    resolved = project.galaxy / "resolved.json"
    if project.requirements is not None and resolved.is_file():
        versions = json.loads(resolved.read_text(encoding="utf-8"))
        found["io.rolecast.requirements"] = ",".join(
            f"{name}={version}" for name, version in sorted(versions.items())
        )
    if image.playbook is not None:
        found["io.rolecast.playbook"] = str(image.playbook.relative_to(ctx.root))
    found |= dict(project.loaded.spec.defaults.labels)
    found |= dict(image.spec.labels)
    found |= dict(image.spec.config.labels)
    return found


def render_input(
    ctx: Context,
    image: ResolvedImage,
    *,
    build_id: str,
    parent: str,
    parent_config: render.ParentConfig,
    build_dir: Path,
    tags: list[str],
    fingerprint: str = FINGERPRINT_PLACEHOLDER,
) -> render.RenderInput:
    project = ctx.project
    connection, strategy = choose_connection(
        ctx.options.connection or image.spec.connection or project.loaded.spec.defaults.connection
    )
    cfg = ctx.root / "ansible.cfg"
    return render.RenderInput(
        name=image.slug,
        parent=parent,
        parent_is_local=True,
        parent_config=parent_config,
        config=image.spec.config,
        labels=labels(ctx, image, tags) | {FINGERPRINT_LABEL: fingerprint},
        repository=image.repository,
        tags=tags,
        build_id=build_id,
        playbook=image.playbook or build_dir / "playbook.yml",
        extra_vars_file=build_dir / "vars.json",
        connection=connection,  # type: ignore[arg-type]
        packer_version=ctx.packer,
        packer_plugins=project.packer_plugins,
        groups=list(image.spec.groups),
        inventory=image.inventory,
        host_alias=host_alias(image.host, image.slug),
        vault_arguments=list(ctx.options.vault_arguments),
        extra_vars_arguments=project.extra_vars.arguments(build_dir),
        roles_paths=list(project.roles_paths),
        collections_paths=list(project.collections_paths),
        ansible_config=cfg if cfg.is_file() else None,
        mitogen_strategy_dir=strategy,
        verbose=ctx.options.verbose,
        ansible_playbook=ansible_playbook(),
        apt_cache=image.spec.config.cleanup,
        # The generated play waits for apt's lists; a user's own playbook cannot.
        lists_wait=image.spec.config.cleanup and image.playbook is None,
        project_id=ctx.identity,
        services=image.services,
        tools_dir=build_dir / "tools",
    )


def play_items(
    project: Project, image: ResolvedImage, manifest: Manifest, start: int
) -> list[render.PlayItem]:
    """What the generated playbook runs: the roles after stage `start`, and, when the
    image is layered, a stage commit after each."""
    roles = [(ref.role, dict(ref.vars)) for ref, _ in stage_roles(image)]
    if not image.layered:
        return list(roles)
    stages = manifest.stages
    items: list[render.PlayItem] = []
    if start < 0:
        items.append(render.StageCommit(stages[0].name, stage_at(project, image, manifest, 0)))
    for index, role in enumerate(roles, start=1):
        if index > start:
            items.append(role)
            tag = stage_at(project, image, manifest, index)
            items.append(render.StageCommit(stages[index].name, tag))
    return items


def write_inputs(
    project: Project,
    image: ResolvedImage,
    inp: render.RenderInput,
    build_dir: Path,
    items: list[render.PlayItem],
) -> Path:
    """Write the template and what it reads into `.rolecast/build/<image>/`."""
    build_dir.mkdir(parents=True, exist_ok=True)
    project.extra_vars.write_lookups(build_dir)
    if inp.tools_dir is not None:
        shutil.rmtree(inp.tools_dir, ignore_errors=True)
        if provision.uploads_service_tools(inp.services, inp.config):
            inp.tools_dir.mkdir()
            for name, source in provision.service_tools().items():
                shutil.copyfile(source, inp.tools_dir / name)
    if image.playbook is None:
        stage_role = build_dir / "roles" / render.STAGE_ROLE
        (stage_role / "meta").mkdir(parents=True, exist_ok=True)
        (stage_role / "tasks").mkdir(parents=True, exist_ok=True)
        (stage_role / "meta" / "main.yml").write_text(render.STAGE_ROLE_META, encoding="utf-8")
        (stage_role / "tasks" / "main.yml").write_text(render.STAGE_ROLE_TASKS, encoding="utf-8")
        (build_dir / "playbook.yml").write_text(
            render.generated_playbook(
                image.name, inp.host_alias, items, inp.services, inp.lists_wait
            ),
            encoding="utf-8",
        )
        # The idempotence gate applies every role again, whatever came from the cache.
        every_role = [(ref.role, dict(ref.vars)) for ref in image.roles]
        (build_dir / "gate-playbook.yml").write_text(
            render.generated_playbook(image.name, inp.host_alias, list(every_role), inp.services),
            encoding="utf-8",
        )
    extra_vars = {"image_build": True, **image.spec.vars}
    (build_dir / "vars.json").write_text(json.dumps(extra_vars, indent=2), encoding="utf-8")
    path = build_dir / "template.pkr.json"
    path.write_text(render.dumps(render.template(inp)), encoding="utf-8")
    return path


@dataclass(frozen=True)
class BuildInputs:
    """One build's inputs on disk, and what the later phases need of them."""

    build_id: str
    log: Path
    build_dir: Path
    template: Path
    inp: render.RenderInput
    final_tags: list[str]  # the tags that move when the build (and its gates) pass
    candidate: str | None  # where a gated build's commit waits for its gates
    replaced: list[str]  # stage images this build commits again, deepest first


def prepare(
    ctx: Context,
    image: ResolvedImage,
    manifest: Manifest,
    start: Start,
    parent_config: render.ParentConfig,
    gated: bool,
) -> BuildInputs:
    """The `starting` phase: the log, the play, the template. A gated build's Packer tags
    a private candidate; the real tags move only after the gates."""
    build_id = uuid.uuid4().hex[:12]
    log = ctx.logs / f"{image.slug}-{ctx.stamp}-{build_id}.log"
    build_dir = ctx.state_dir / "build" / image.slug
    ctx.emit(image.name, Phase.STARTING, f"log: {ctx.rel(log)}")
    items = play_items(ctx.project, image, manifest, start.index)
    final_tags = ctx.rules.for_image(image, manifest.fingerprint)
    inp = render_input(
        ctx,
        image,
        build_id=build_id,
        parent=start.source,
        parent_config=parent_config,
        build_dir=build_dir,
        tags=final_tags,
        fingerprint=manifest.fingerprint,
    )
    commits = [i for i in items if isinstance(i, render.StageCommit)]
    inp = replace(
        inp, run_ansible=image.playbook is not None or bool(items), stage_cache=bool(commits)
    )
    candidate = None
    if gated:
        repository = candidate_repository(ctx.identity, image.slug)
        candidate = f"{repository}:{build_id}"
        inp = replace(inp, repository=repository, tags=[build_id])
    template = write_inputs(ctx.project, image, inp, build_dir, items)
    # Stage images this build will commit again (under --no-cache or --force): the old
    # ones are removed after the build if nothing uses them, deepest first.
    replaced = [found.id for c in reversed(commits) if (found := ctx.engine.image(c.tag))]
    return BuildInputs(build_id, log, build_dir, template, inp, final_tags, candidate, replaced)
