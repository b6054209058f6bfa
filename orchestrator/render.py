"""What Packer gets: the template (HCL2 JSON syntax), the generated playbook, the scripts.

Every function here is pure: same input, same output, no I/O. `rolecast render` prints
exactly what `rolecast build` runs, and a user can run it by hand with `packer build`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import packer_output, packer_plugins
from .names import HOST_ALIAS_PREFIX, PYTHON_APT_VOLUME, apt_volumes, container_name
from .provision import (
    INIT_COMMAND,
    KEEP_ALIVE,
    PYTHON_APT_HOME,
    SERVICES_COMMAND,
    TOOLS_DIR,
    bootstrap_script,
    cleanup_script,
    lists_barrier,
    uploads_service_tools,
)
from .spec import ImageConfig, Services

ConnectionKind = Literal["mitogen", "docker", "proxy"]

# Packer bind-mounts its scratch directory into the build container. Mounting it over an
# existing, empty directory leaves nothing in the committed image (a new /packer-files
# mount point would be committed as an empty directory).
CONTAINER_DIR = "/mnt"
STAGE_ROLE = packer_output.STAGE_ROLE
BUILD_LABEL = "io.rolecast.build"
IMAGE_LABEL = "io.rolecast.image"
# OpenSSH 9 refuses Packer's RSA host key and its scp server without these.
PROXY_SSH_ARGS = "-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa"
PROXY_SCP_ARGS = "-O"


@dataclass(frozen=True)
class ParentConfig:
    """The parts of the parent image's config that Packer's commit would otherwise clobber."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str = ""


@dataclass(frozen=True)
class RenderInput:
    name: str
    parent: str
    parent_is_local: bool
    parent_config: ParentConfig
    config: ImageConfig
    labels: dict[str, str]
    repository: str
    tags: list[str]
    build_id: str
    playbook: Path
    extra_vars_file: Path
    connection: ConnectionKind
    packer_version: tuple[int, ...]
    # Packer 1.7 and later: the plugins' versions by name (the defaults when empty)
    packer_plugins: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    inventory: Path | None = None
    roles_paths: list[Path] = field(default_factory=list)
    collections_paths: list[Path] = field(default_factory=list)
    ansible_config: Path | None = None
    mitogen_strategy_dir: Path | None = None
    host_alias: str = ""
    verbose: bool = False
    ansible_playbook: str = "ansible-playbook"
    vault_arguments: list[str] = field(default_factory=list)
    # -e of the run: lookups of environment variables and @FILE paths, never a value
    extra_vars_arguments: list[str] = field(default_factory=list)
    run_ansible: bool = True  # False when every role's stage comes from the cache
    apt_cache: bool = False  # apt's lists and caches on volumes of the image's own
    lists_wait: bool = False  # the play waits for apt's lists (fetched in the background)
    stage_cache: bool = False  # the playbook commits each stage (needs the container id)
    project_id: str = ""  # names the build container, so a later build finds it if orphaned
    services: Services = "run"
    tools_dir: Path | None = None  # the service manager's scripts, uploaded with `run`


def hcl_escape(text: str) -> str:
    """Packer reads every JSON string as an HCL template: keep `${` and `%{` literal."""
    return text.replace("${", "$${").replace("%{", "%%{")


def dockerfile_quote(text: str) -> str:
    """A double-quoted Dockerfile word: no variable expansion, quotes and backslashes kept."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _effective_user(config: ImageConfig, parent: ParentConfig) -> tuple[str | None, bool]:
    """(USER to commit or None to keep the parent's, whether the build must run as root)."""
    parent_user = parent.user
    runs_as_other = parent_user not in ("", "root", "0", "0:0", "root:root")
    if config.user is not None:
        return config.user, runs_as_other
    if runs_as_other:
        return parent_user, True
    return None, False


def entrypoint_of(config: ImageConfig, parent: ParentConfig) -> list[str] | None:
    """The image's ENTRYPOINT: the service manager with `init: services`, else the
    config's, else the parent's."""
    if config.init == "services":
        return [INIT_COMMAND]
    return config.entrypoint if config.entrypoint is not None else parent.entrypoint


def changes(config: ImageConfig, parent: ParentConfig, labels: dict[str, str]) -> list[str]:
    """Dockerfile instructions applied at commit. ENTRYPOINT and CMD are always explicit."""
    out: list[str] = []
    entrypoint = entrypoint_of(config, parent)
    if entrypoint:
        out.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
    cmd = config.cmd if config.cmd is not None else parent.cmd
    new_entrypoint = config.entrypoint is not None or config.init is not None
    if new_entrypoint and config.cmd is None:
        cmd = None  # as in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
    out.append(f"CMD {json.dumps(cmd or [])}")
    for key, value in config.env.items():
        out.append(f"ENV {key}={dockerfile_quote(value)}")
    user, _ = _effective_user(config, parent)
    if user is not None:
        out.append(f"USER {user}")
    if config.workdir:
        out.append(f"WORKDIR {dockerfile_quote(config.workdir)}")
    for port in config.expose:
        out.append(f"EXPOSE {port}")
    if config.volumes:
        out.append(f"VOLUME {json.dumps(config.volumes)}")
    for key, value in sorted(labels.items()):
        out.append(f"LABEL {dockerfile_quote(key)}={dockerfile_quote(value)}")
    return out


def run_command(inp: RenderInput) -> list[str]:
    """`docker run` arguments: a shell that waits and reaps (KEEP_ALIVE), labelled so
    Rolecast can always find it."""
    config_entrypoint = entrypoint_of(inp.config, inp.parent_config)
    argv = ["-d", "-i", "-t"]
    _, as_root = _effective_user(inp.config, inp.parent_config)
    if as_root:
        argv.append("--user=0")
    # With no entrypoint wanted, run the shell as the command so that the committed
    # config has none; `ENTRYPOINT []` at commit cannot clear one.
    if inp.config.stopsignal:
        # `docker commit --change` has no STOPSIGNAL; the container's own is committed.
        argv.append(f"--stop-signal={inp.config.stopsignal}")
    argv.append("--entrypoint=/bin/sh" if config_entrypoint else "--entrypoint=")
    # As on a VM, the loopback has ::1 (Docker turns IPv6 off in a container): a daemon
    # that listens on every protocol fails to start without it.
    argv.append("--sysctl=net.ipv6.conf.lo.disable_ipv6=0")
    if inp.apt_cache:
        # Never committed (a volume is not part of the container's filesystem), kept
        # from one build of the image to the next, as a build cache mount is.
        for volume, path in apt_volumes(inp.project_id, inp.name).items():
            argv += ["-v", f"{volume}:{path}"]
        argv += ["-v", f"{PYTHON_APT_VOLUME}:{PYTHON_APT_HOME}"]
    argv += [
        "--label",
        f"{BUILD_LABEL}={inp.build_id}",
        "--label",
        f"{IMAGE_LABEL}={inp.name}",
        *(
            [f"--name={container_name(inp.project_id, inp.name, inp.build_id)}"]
            * bool(inp.project_id)
        ),
        "--",
        "{{.Image}}",
    ]
    if not config_entrypoint:
        argv.append("/bin/sh")
    return [*argv, "-c", KEEP_ALIVE]


# Packer's inventory line for Ansible 2 and later, which it picks after running
# `ansible-playbook --version`; given, so that Packer need not run it.
INVENTORY_LINE = (
    "{{ .HostAlias }} ansible_host={{ .Host }} ansible_user={{ .User }} ansible_port={{ .Port }}\n"
)

# The bootstrap (and a gate's) makes sure `python3` is on the container's PATH, so Ansible
# needs no interpreter discovery. Discovery also costs: Mitogen discovers again for every
# task (two failed `docker exec`s of python3.13 and python3.12 each time), which made a
# task of 30 ms take 300 ms.
INTERPRETER = "python3"


def ansible_env(inp: RenderInput) -> list[str]:
    env = {
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_REMOTE_TMP": "/tmp/.ansible-rolecast",
        "ANSIBLE_LOCALHOST_WARNING": "False",
    }
    if inp.ansible_config is not None:
        env["ANSIBLE_CONFIG"] = str(inp.ansible_config)
    if inp.roles_paths:
        env["ANSIBLE_ROLES_PATH"] = ":".join(str(p) for p in inp.roles_paths)
    if inp.collections_paths:
        defaults = ["~/.ansible/collections", "/usr/share/ansible/collections"]
        env["ANSIBLE_COLLECTIONS_PATH"] = ":".join([*map(str, inp.collections_paths), *defaults])
    if inp.connection == "mitogen":
        assert inp.mitogen_strategy_dir is not None
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(inp.mitogen_strategy_dir)
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
    elif inp.connection == "docker":
        env["ANSIBLE_PIPELINING"] = "True"
    else:
        env["ANSIBLE_SSH_EXTRA_ARGS"] = PROXY_SSH_ARGS
        env["ANSIBLE_SCP_EXTRA_ARGS"] = PROXY_SCP_ARGS
        env["ANSIBLE_SSH_TRANSFER_METHOD"] = "scp"
    return [f"{key}={value}" for key, value in env.items()]


def ansible_arguments(inp: RenderInput) -> list[str]:
    args = ["--limit", inp.host_alias or HOST_ALIAS_PREFIX + inp.name]
    if inp.inventory is not None:
        # The project's inventory beside Packer's: its group_vars/host_vars apply to the
        # groups the build host joins, exactly as for a VM of those groups.
        args += ["-i", str(inp.inventory)]
    args += ["-e", f"@{inp.extra_vars_file}"]
    # Paths only: the vault password itself is read by ansible-playbook, never by us.
    args += inp.vault_arguments
    # The user's -e win over the spec's vars; Rolecast's connection settings win over both.
    args += inp.extra_vars_arguments
    if inp.connection in ("mitogen", "docker"):
        plugin = "docker" if inp.connection == "mitogen" else "community.docker.docker"
        # Extra vars win over an inventory host's own connection settings (a VM's
        # address, its SSH user, its interpreter path), which mean nothing here.
        args += [
            "-e",
            f"ansible_connection={plugin}",
            "-e",
            "ansible_host=${build.ID}",
            "-e",
            "ansible_user=root",
            "-e",
            f"ansible_python_interpreter={INTERPRETER}",
        ]
    if inp.stage_cache:
        args += ["-e", "rolecast_container=${build.ID}"]
    if inp.verbose:
        args.append("-v")
    return args


def _hcl(value: Any) -> Any:
    if isinstance(value, str):
        return hcl_escape(value)
    if isinstance(value, list):
        return [_hcl(v) for v in value]
    if isinstance(value, dict):
        return {k: _hcl(v) for k, v in value.items()}
    return value


def template(inp: RenderInput) -> dict[str, Any]:
    """The Packer template for one image, as a dict to dump as `*.pkr.json`."""
    alias = inp.host_alias or HOST_ALIAS_PREFIX + inp.name
    source = _hcl(
        {
            "image": inp.parent,
            "pull": not inp.parent_is_local,
            "commit": True,
            "container_dir": CONTAINER_DIR,
            "run_command": run_command(inp),
            "changes": changes(inp.config, inp.parent_config, inp.labels),
        }
    )
    ansible: dict[str, Any] = {
        "playbook_file": hcl_escape(str(inp.playbook)),
        "command": hcl_escape(inp.ansible_playbook),
        "host_alias": alias,
        "user": "root",
        "ansible_env_vars": _hcl(ansible_env(inp)),
        "extra_arguments": [
            a if a.endswith("=${build.ID}") else hcl_escape(a) for a in ansible_arguments(inp)
        ],
    }
    if inp.groups:
        ansible["groups"] = list(inp.groups)
    # Packer's own `ansible-playbook --version` (a second, before the container starts)
    # only chooses this inventory line's form; the checks already know Ansible's version.
    ansible["skip_version_check"] = True
    ansible["inventory_file_template"] = INVENTORY_LINE
    if inp.connection != "proxy":
        ansible["use_proxy"] = False
    shell_common = {"remote_folder": CONTAINER_DIR}
    tools: list[dict[str, Any]] = []
    if uploads_service_tools(inp.services, inp.config):
        assert inp.tools_dir is not None
        upload = {"source": hcl_escape(f"{inp.tools_dir}/"), "destination": f"{TOOLS_DIR}/"}
        tools.append({"file": upload})
    cleanup = cleanup_script(inp.config, inp.apt_cache, inp.services)

    build: dict[str, Any] = {
        "name": inp.name,
        "sources": [f"source.docker.{inp.name}"],
        "provisioner": [
            *tools,
            {
                "shell": {
                    "inline": _hcl(bootstrap_script(inp.services, inp.apt_cache, inp.lists_wait)),
                    **shell_common,
                }
            },
            *([{"ansible": ansible}] if inp.run_ansible else []),
            {"shell": {"inline": _hcl(cleanup), **shell_common}},
        ],
        "post-processor": [{"docker-tag": {"repository": inp.repository, "tags": list(inp.tags)}}],
    }
    out: dict[str, Any] = {}
    if inp.packer_version >= packer_plugins.FIRST_SEPARATE:
        pinned = packer_plugins.pinned(inp.packer_plugins)
        out["packer"] = {
            "required_plugins": {
                p.name: {"version": f"= {p.version}", "source": p.source} for p in pinned
            }
        }
    out["source"] = {"docker": {inp.name: source}}
    out["build"] = build
    return out


@dataclass(frozen=True)
class StageCommit:
    """After the roles before it, commit the build container as a cached stage."""

    name: str
    tag: str


PlayItem = tuple[str, dict[str, Any]] | StageCommit


def generated_playbook(
    name: str,
    alias: str,
    items: list[PlayItem],
    services: Services = "run",
    lists_wait: bool = False,
) -> str:
    """The playbook that applies an image's roles in order, each with its own vars.

    A StageCommit between roles runs the role `rolecast_stage` (from `roles/` beside the
    playbook), which flushes handlers and commits the build container as that stage's
    cache image; the roles keep running in one play, so facts and variables flow between
    them as on a VM.
    """
    entries: list[dict[str, Any]] = []
    for number, item in enumerate(items, 1):
        if isinstance(item, StageCommit):
            stage_vars: dict[str, Any] = {
                "rolecast_stage_name": item.name,
                "rolecast_stage_tag": item.tag,
            }
            if services == "run":
                stage_vars["rolecast_stage_services"] = True
                if number == len(items):
                    # The play ends here and the clean-up stops every service: starting
                    # them again only to stop them costs their start and stop.
                    stage_vars["rolecast_stage_resume"] = False
            entries.append({"role": STAGE_ROLE, "vars": stage_vars})
            continue
        role, params = item
        entry: dict[str, Any] = {"role": role}
        if params:
            entry["vars"] = params
        entries.append(entry)
    play: list[dict[str, Any]] = [
        {"name": f"rolecast: {name}", "hosts": alias, "gather_facts": True, "roles": entries}
    ]
    if lists_wait:
        play[0]["pre_tasks"] = lists_barrier()
    if services == "skip":
        # Ansible's systemd module then records `enabled` and skips start/restart
        # instead of failing on the missing init system.
        play[0]["environment"] = {"SYSTEMD_OFFLINE": "1"}
    header = f"# Generated by rolecast for image {name}; do not edit.\n"
    return header + json.dumps(play, indent=2) + "\n"


# The role that commits a stage. The commit runs on the controller (a pipe lookup), where
# the Docker CLI is, whatever connection reaches the container.
STAGE_ROLE_META = """---
# Generated by rolecast: runs once per cached stage.
allow_duplicates: true
dependencies: []
"""
STAGE_ROLE_TASKS = f"""---
# Generated by rolecast: handlers first, so the stage holds everything its roles did.
# With services: run, the services are stopped cleanly before the commit, so that what
# they wrote is on disk and consistent, and started again after it.
- name: run the handlers of this stage
  ansible.builtin.meta: flush_handlers

- name: "{packer_output.STAGE_TASK}{{{{ rolecast_stage_name }}}}"
  when: rolecast_container is defined  # not in a gate's second run
  vars:
    rolecast_commit: >-
      docker commit {{{{ rolecast_container | quote }}}} {{{{ rolecast_stage_tag | quote }}}}
    rolecast_services: docker exec {{{{ rolecast_container | quote }}}} {SERVICES_COMMAND}
    rolecast_resume: "{{{{ (' && ' ~ rolecast_services ~ ' resume')
      if rolecast_stage_resume | default(true) else '' }}}}"
    rolecast_stage_command: "{{{{ (rolecast_services ~ ' stop >/dev/null && ' ~ rolecast_commit
      ~ rolecast_resume) if rolecast_stage_services | default(false)
      else rolecast_commit }}}}"
  ansible.builtin.debug:
    msg: "{{{{ lookup('ansible.builtin.pipe', rolecast_stage_command) }}}}"
"""


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def shell_join(argv: list[str]) -> str:
    return shlex.join(argv)
