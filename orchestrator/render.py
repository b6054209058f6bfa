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

from .names import apt_volumes, container_name
from .spec import ImageConfig

ConnectionKind = Literal["mitogen", "docker", "proxy"]

HOST_ALIAS_PREFIX = "rolecast-"
# Packer bind-mounts its scratch directory into the build container. Mounting it over an
# existing, empty directory leaves nothing in the committed image (a new /packer-files
# mount point would be committed as an empty directory).
CONTAINER_DIR = "/mnt"
# What the bootstrap did, kept in the container's own filesystem so that a cached stage
# carries it to the build that resumes from it; the clean-up removes it before the commit.
RECORDS_DIR = "/var/lib/rolecast-build"
BOOTSTRAP_RECORD = f"{RECORDS_DIR}/bootstrap"
SHIMS_RECORD = f"{RECORDS_DIR}/shims"
SERVICES_RECORD = f"{RECORDS_DIR}/services"
STAGE_ROLE = "rolecast_stage"

# Build-time stand-ins, installed only where the real thing is missing and removed before
# the commit: a build runs as root with no init system, and roles written for VMs
# expect sudo for `become_user` and systemctl for their services.
SUDO_SHIM = r"""#!/bin/sh
# Rolecast's build-time sudo: the build runs as root, so becoming anyone needs no password.
user=root
while [ $# -gt 0 ]; do
  case "$1" in
    -u) user=$2; shift 2 ;;
    -u*) user=${1#-u}; shift ;;
    -p|-g|-C|-D|-r|-t|-U|-T) shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
entry=$(getent passwd "$user") || { echo "sudo: unknown user $user" >&2; exit 1; }
HOME=$(echo "$entry" | cut -d: -f6); USER=$user; LOGNAME=$user; export HOME USER LOGNAME
if [ "$(echo "$entry" | cut -d: -f3)" = 0 ]; then exec "$@"; fi
exec runuser -u "$user" -- "$@"
"""

SYSTEMCTL_SHIM = r"""#!/bin/sh
# Rolecast's build-time systemctl: no init system runs while an image is built.
# enable/disable write the [Install] symlinks, as systemctl does offline; start, stop
# and restart are recorded and skipped: the container's command starts the service.
dirs="/etc/systemd/system /lib/systemd/system /usr/lib/systemd/system"
unit_file() {
  for d in $dirs; do if [ -f "$d/$1" ]; then echo "$d/$1"; return 0; fi; done
  return 1
}
action=""; units=""
for arg in "$@"; do
  case "$arg" in
    -*) ;;
    *) if [ -z "$action" ]; then action=$arg
       else case "$arg" in *.*) units="$units $arg" ;; *) units="$units $arg.service" ;; esac
       fi ;;
  esac
done
case "$action" in
  enable|reenable|disable)
    for u in $units; do
      file=$(unit_file "$u") || { echo "Unit file $u does not exist." >&2; exit 1; }
      for target in $(sed -n 's/^WantedBy=//p' "$file"); do
        if [ "$action" = disable ]; then rm -f "/etc/systemd/system/$target.wants/$u"
        else mkdir -p "/etc/systemd/system/$target.wants"
             ln -sf "$file" "/etc/systemd/system/$target.wants/$u"; fi
      done
    done ;;
  is-enabled)
    for u in $units; do
      if ls /etc/systemd/system/*.wants/"$u" >/dev/null 2>&1; then echo enabled
      elif unit_file "$u" >/dev/null; then echo disabled; exit 1
      else echo "Failed to get unit file state for $u" >&2; exit 1; fi
    done ;;
  list-unit-files)
    for u in $units; do unit_file "$u" >/dev/null || exit 1; done ;;
  start|stop|restart|reload|try-restart|reload-or-restart|try-reload-or-restart|kill)
    echo "$action$units" >> /var/lib/rolecast-build/services ;;
  daemon-reload|daemon-reexec|mask|unmask|preset|reset-failed) ;;
  *) exit 1 ;;
esac
exit 0
"""

POLICY_RC_D = "#!/bin/sh\n# Rolecast: no service starts while an image is built.\nexit 101\n"
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
    run_ansible: bool = True  # False when every role's stage comes from the cache
    apt_cache: bool = False  # apt's lists and caches on volumes of the image's own
    stage_cache: bool = False  # the playbook commits each stage (needs the container id)
    project_id: str = ""  # names the build container, so a later build finds it if orphaned


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


def changes(config: ImageConfig, parent: ParentConfig, labels: dict[str, str]) -> list[str]:
    """Dockerfile instructions applied at commit. ENTRYPOINT and CMD are always explicit."""
    out: list[str] = []
    entrypoint = config.entrypoint if config.entrypoint is not None else parent.entrypoint
    if entrypoint:
        out.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
    cmd = config.cmd if config.cmd is not None else parent.cmd
    if config.entrypoint is not None and config.cmd is None:
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
    """`docker run` arguments: a shell that waits, labelled so Rolecast can always find it."""
    config_entrypoint = (
        inp.config.entrypoint if inp.config.entrypoint is not None else inp.parent_config.entrypoint
    )
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
    if inp.apt_cache:
        # Never committed (a volume is not part of the container's filesystem), kept
        # from one build of the image to the next, as a build cache mount is.
        for volume, path in apt_volumes(inp.project_id, inp.name).items():
            argv += ["-v", f"{volume}:{path}"]
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
    return argv


def _install_when_missing(command: str, text: str) -> str:
    """Shell that installs a stand-in for `command` when the image has none, and records it."""
    path = f"/usr/local/sbin/{command}"
    return f"""if ! command -v {command} >/dev/null 2>&1; then
  cat > {path} <<'ROLECAST_SHIM'
{text.strip()}
ROLECAST_SHIM
  chmod 755 {path}
  shims="$shims {path}"
fi"""


def bootstrap_script() -> list[str]:
    """Install what Ansible needs (python3; python3-apt for the apt module), and say so."""
    script = f"""
set -e
if [ -f {BOOTSTRAP_RECORD} ]; then
  echo "rolecast: resuming from a cached stage"
  if command -v apt-get >/dev/null 2>&1 && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1
  then
    # the apt cache volume was removed; without a mirror, only roles that use apt fail
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      echo "rolecast: apt-get update failed; roles that install packages will fail" >&2
  fi
  exit 0
fi
mkdir -p {RECORDS_DIR}
need=""
if command -v apt-get >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || need="python3"
  python3 -c 'import apt' >/dev/null 2>&1 || need="$need python3-apt"
  if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! {{ apt-get update -qq &&
      apt-get install -y -qq --no-install-recommends $need >/dev/null; }}; then
      command -v python3 >/dev/null 2>&1 || {{
        echo "rolecast: python3 is missing and apt-get could not install it" >&2; exit 1; }}
      # No package mirror here (an engine without network): Ansible runs without the apt
      # module's helper, and only roles that use apt fail, with apt's own error.
      echo "rolecast: could not install python3-apt; roles that use apt will fail" >&2
      need=""
    fi
  fi
elif command -v dnf >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || {{ need="python3"; dnf install -y -q python3; }}
elif command -v apk >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || {{ need="python3"; apk add --no-cache -q python3; }}
elif ! command -v python3 >/dev/null 2>&1; then
  echo "rolecast: no python3 in the image and no apt-get, dnf or apk to install it" >&2
  exit 1
fi
echo "$need" > {BOOTSTRAP_RECORD}
if [ -n "$need" ]; then echo "rolecast: installed for Ansible:$need"; fi
shims=""
mkdir -p /usr/local/sbin
{_install_when_missing("sudo", SUDO_SHIM)}
{_install_when_missing("systemctl", SYSTEMCTL_SHIM)}
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '{POLICY_RC_D}' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  shims="$shims /usr/sbin/policy-rc.d"
fi
echo "$shims" > {SHIMS_RECORD}
"""
    return script.strip().splitlines()


def cleanup_script(config: ImageConfig, apt_cache: bool = False) -> list[str]:
    """Remove what the build left: Ansible's temp files, Rolecast's own packages, apt lists.

    With `apt_cache`, apt's lists and cache are on volumes, never committed: they stay
    for the next build."""
    lines = ["set -e"]
    if not config.keep_ansible_deps:
        lines += [
            f"installed=$(cat {BOOTSTRAP_RECORD} 2>/dev/null || true)",
            'if [ -n "$installed" ] && command -v apt-mark >/dev/null 2>&1; then',
            "  apt-mark auto $installed >/dev/null",
            "  DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq --purge >/dev/null",
            '  left=""',
            "  for p in $installed; do",
            '    dpkg -s $p >/dev/null 2>&1 && left="$left $p"',
            "  done",
            '  echo "rolecast: removed what only Ansible needed; kept:${left:- none}"',
            "fi",
        ]
    lines += [
        f'for shim in $(cat {SHIMS_RECORD} 2>/dev/null); do rm -f "$shim"; done',
        f"if [ -s {SERVICES_RECORD} ]; then",
        '  echo "rolecast: warning: skipped service actions (no init system in a build):'
        f' $(sort -u {SERVICES_RECORD} | paste -sd, -)"',
        "fi",
        f"rm -rf {RECORDS_DIR}",
        "for home in /root $(cut -d: -f6 /etc/passwd | sort -u); do",
        '  [ -d "$home/.ansible" ] && rm -rf "$home/.ansible"',
        "done",
        "rm -rf /tmp/.ansible* /tmp/ansible* /var/tmp/.ansible* /var/tmp/ansible* /root/.cache/pip",
    ]
    if config.cleanup and not apt_cache:
        lines += [
            "if command -v apt-get >/dev/null 2>&1; then apt-get clean; fi",
            "rm -rf /var/lib/apt/lists/*",
        ]
    if config.cleanup:
        lines.append("rm -rf /tmp/* /var/tmp/*")
    lines.append("true")
    return lines


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
            "ansible_python_interpreter=auto_silent",
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
    if inp.connection != "proxy":
        ansible["use_proxy"] = False
    shell_common = {"remote_folder": CONTAINER_DIR}
    build: dict[str, Any] = {
        "name": inp.name,
        "sources": [f"source.docker.{inp.name}"],
        "provisioner": [
            {"shell": {"inline": _hcl(bootstrap_script()), **shell_common}},
            *([{"ansible": ansible}] if inp.run_ansible else []),
            {"shell": {"inline": _hcl(cleanup_script(inp.config, inp.apt_cache)), **shell_common}},
        ],
        "post-processor": [{"docker-tag": {"repository": inp.repository, "tags": list(inp.tags)}}],
    }
    out: dict[str, Any] = {}
    if inp.packer_version >= (1, 7):
        out["packer"] = {
            "required_plugins": {
                "docker": {"version": ">= 1.0.0", "source": "github.com/hashicorp/docker"},
                "ansible": {"version": ">= 1.0.0", "source": "github.com/hashicorp/ansible"},
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


def generated_playbook(name: str, alias: str, items: list[PlayItem]) -> str:
    """The playbook that applies an image's roles in order, each with its own vars.

    A StageCommit between roles runs the role `rolecast_stage` (from `roles/` beside the
    playbook), which flushes handlers and commits the build container as that stage's
    cache image; the roles keep running in one play, so facts and variables flow between
    them as on a VM.
    """
    entries: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, StageCommit):
            entries.append(
                {
                    "role": STAGE_ROLE,
                    "vars": {"rolecast_stage_name": item.name, "rolecast_stage_tag": item.tag},
                }
            )
            continue
        role, params = item
        entry: dict[str, Any] = {"role": role}
        if params:
            entry["vars"] = params
        entries.append(entry)
    play = [
        {
            "name": f"rolecast: {name}",
            "hosts": alias,
            "gather_facts": True,
            # Ansible's systemd module then records `enabled` and skips start/restart
            # instead of failing on the missing init system.
            "environment": {"SYSTEMD_OFFLINE": "1"},
            "roles": entries,
        }
    ]
    header = f"# Generated by rolecast for image {name}; do not edit.\n"
    return header + json.dumps(play, indent=2) + "\n"


# The role that commits a stage. The commit runs on the controller (a pipe lookup), where
# the Docker CLI is, whatever connection reaches the container.
STAGE_ROLE_META = """---
# Generated by rolecast: runs once per cached stage.
allow_duplicates: true
dependencies: []
"""
STAGE_ROLE_TASKS = """---
# Generated by rolecast: handlers first, so the stage holds everything its roles did.
- name: run the handlers of this stage
  ansible.builtin.meta: flush_handlers

- name: "cache stage {{ rolecast_stage_name }}"
  when: rolecast_container is defined  # not in a gate's second run
  ansible.builtin.debug:
    msg: "{{ lookup('ansible.builtin.pipe', 'docker commit ' ~ (rolecast_container | quote)
      ~ ' ' ~ (rolecast_stage_tag | quote)) }}"
"""


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def shell_join(argv: list[str]) -> str:
    return shlex.join(argv)
