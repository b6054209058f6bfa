"""What runs in the build container around the play: the bootstrap before it (what
Ansible needs, and what stands in for a VM) and the clean-up after it. Pure: each function
returns the lines of a shell provisioner.

A build runs as root with no init system, and roles written for VMs expect sudo for
`become_user` and a service manager. With `services: run` (the default) the service
manager is docker-systemctl-replacement, driven by `container/services.py`: services
really run during the play and are stopped cleanly before every commit. With
`services: skip`, a stand-in records starts and restarts and skips them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

from .packer_output import CLEANING_UP_LINE, STOPPING_SERVICES_LINE
from .report import LISTS_TASK
from .spec import ImageConfig, Services

# What the bootstrap did, kept in the container's own filesystem so that a cached stage
# carries it to the build that resumes from it; the clean-up removes it before the commit.
RECORDS_DIR = "/var/lib/rolecast-build"
BOOTSTRAP_RECORD = f"{RECORDS_DIR}/bootstrap"
SHIMS_RECORD = f"{RECORDS_DIR}/shims"
SAVED_SUFFIX = ".rolecast-saved"  # an image's own file where a build-time stand-in goes
SERVICES_RECORD = f"{RECORDS_DIR}/services"

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

# Where the service manager's scripts are uploaded for the build; removed before the commit.
TOOLS_DIR = "/usr/local/lib/rolecast-build"
SERVICES_COMMAND = "/usr/local/sbin/rolecast-services"
SERVICE_MANAGER_PACKAGE = "docker-systemctl-replacement"
# With `config.init: services`, what stays in the image: the service manager and its
# licence, and the entrypoint that runs it as PID 1.
INIT_DIR = "/usr/local/lib/rolecast"
INIT_COMMAND = "/usr/local/sbin/rolecast-init"


# The build container's command. As PID 1 it must reap what a service leaves when it
# daemonizes and later exits: a shell waiting on its terminal never does, and a stop
# command that waits for the daemon's PID to vanish (`start-stop-daemon --retry`) then waits
# out its whole schedule on the zombie. The shell's `wait` reaps every child, orphans
# included; its sleep carries KEEP_ALIVE_MARK, so the service manager knows it is no
# service. (`docker run --init` would reap too, but commits an empty /usr/sbin/docker-init.)
KEEP_ALIVE_MARK = "ROLECAST_KEEP_ALIVE=1"
KEEP_ALIVE = f"while :; do {KEEP_ALIVE_MARK} sleep 3600 & wait $!; done"


def uploads_service_tools(services: Services, config: ImageConfig) -> bool:
    """Whether the build uploads the service manager: to run services, or to keep it as
    the image's PID 1."""
    return services == "run" or config.init == "services"


@cache
def service_tools() -> dict[str, Path]:
    """The files uploaded to TOOLS_DIR for `services: run`, by their name there."""
    replacement = resources.files("systemctl2")
    ours = resources.files("orchestrator.container")
    found = {
        "systemctl3.py": Path(str(replacement / "systemctl3.py")),
        "journalctl3.py": Path(str(replacement / "journalctl3.py")),
        "services.py": Path(str(ours / "services.py")),
    }
    licence = [f for f in distribution(SERVICE_MANAGER_PACKAGE).files or [] if "LICENSE" in f.name]
    if licence:
        found["EUPL-LICENSE.md"] = Path(str(licence[0].locate()))
    return found


@cache
def service_manager_version() -> str:
    try:
        return version(SERVICE_MANAGER_PACKAGE)
    except PackageNotFoundError:
        return "missing"


def wrapper(path: str, command: str) -> str:
    """Shell that puts `command` at `path` for the build (ahead of any real one on PATH)
    and records it for the clean-up. A file already there (where /usr/sbin is /usr/bin,
    the image's own systemctl) is set aside and put back by the clean-up."""
    return "\n".join(
        [
            f"if [ -e {path} ] || [ -L {path} ]; then mv {path} {path}{SAVED_SUFFIX}; fi",
            f"""printf '#!/bin/sh\\nexec %s {command} "$@"\\n' "$python" > {path}""",
            f"chmod 755 {path}",
            f'shims="$shims {path}"',
        ]
    )


def _service_manager(services: Services) -> str:
    if services == "skip":
        return f"""{_install_when_missing("systemctl", SYSTEMCTL_SHIM)}
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '{POLICY_RC_D}' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  shims="$shims /usr/sbin/policy-rc.d"
fi"""
    # A package's maintainer scripts start its services, as on a VM; /run/systemd/system
    # tells them, and Ansible's service-manager fact, that systemd manages this host.
    # /usr/sbin is on every PATH they run with, and before /usr/bin (systemd's own).
    return f"""python=$(command -v python3)
{wrapper("/usr/sbin/systemctl", f"{TOOLS_DIR}/services.py systemctl")}
{wrapper("/usr/sbin/journalctl", f"{TOOLS_DIR}/journalctl3.py")}
{wrapper(SERVICES_COMMAND, f"{TOOLS_DIR}/services.py")}
# What the build makes for the service manager goes with the stand-ins: the top folder
# it had to make, so no empty /run/systemd or /var/log/journal is left in the image.
for folder in /run/systemd/system /var/log/journal; do
  made=""
  while [ ! -e "$folder" ]; do made=$folder; folder=$(dirname "$folder"); done
  if [ -n "$made" ]; then
    mkdir -p "$made"
    shims="$shims $made"
  fi
done
mkdir -p /run/systemd/system"""


def _keep_init() -> list[str]:
    """`config.init: services`: the service manager stays, as the image's PID 1 (python3,
    which it runs on, stays too)."""
    return [
        f"mkdir -p {INIT_DIR}",
        f"cp {TOOLS_DIR}/systemctl3.py {TOOLS_DIR}/EUPL-LICENSE.md {INIT_DIR}/",
        "python=$(command -v python3)",
        f"""printf '#!/bin/sh\\nexec %s {INIT_DIR}/systemctl3.py "$@"\\n' "$python" \\""",
        f"  > {INIT_COMMAND}",
        f"chmod 755 {INIT_COMMAND}",
        # `docker exec CONTAINER systemctl status` asks the same manager.
        f"cp {INIT_COMMAND} /usr/local/bin/systemctl",
        f'kept=""; for p in $(cat {BOOTSTRAP_RECORD} 2>/dev/null); do',
        '  [ "$p" = python3 ] || kept="$kept $p"',
        f'done; echo "$kept" > {BOOTSTRAP_RECORD}',
    ]


def _resume_services(services: Services) -> str:
    if services != "run":
        return ""
    return f"""
  if [ -x {SERVICES_COMMAND} ]; then {SERVICES_COMMAND} resume; fi"""


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


# With the apt cache volumes (`cleanup: true`, the default), python3-apt is never
# installed: its package, from the image's own archive, is unpacked once on the cache
# volume (per apt, python and architecture) and found through a .pth file that the
# clean-up removes. Nothing to purge, nothing in dpkg's database or logs.
APT_HELPERS = "/var/cache/apt/rolecast"  # on the image's own cache volume
PYTHON_APT_RECORD = f"{RECORDS_DIR}/python-apt"  # the .pth file to remove
LISTS_STAMP = f"{APT_HELPERS}/lists-updated"
# Held while apt's lists are fetched in the background, and what that said.
LISTS_LOCK = f"{APT_HELPERS}/lists.lock"
LISTS_LOG = f"{APT_HELPERS}/lists.log"
# The unpacked python3-apt, on a volume of the host's (PYTHON_APT_VOLUME): the same for
# every image of the same distribution, apt, python and architecture.
PYTHON_APT_HOME = "/var/cache/apt/rolecast-python3-apt"
LISTS_MAX_AGE_MINUTES = 60  # apt's lists are fetched again when older (as cache_valid_time)

_FRESH_LISTS = f"""fresh_lists() {{
  # apt's lists, as fresh as a VM's: fetched when missing or older than an hour
  if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 && [ -f {LISTS_STAMP} ] &&
    [ -z "$(find {LISTS_STAMP} -mmin +{LISTS_MAX_AGE_MINUTES})" ]; then
    return 0
  fi
  if DEBIAN_FRONTEND=noninteractive apt-get update -qq; then
    mkdir -p {APT_HELPERS} && touch {LISTS_STAMP}
  else
    echo "rolecast: apt-get update failed; roles that install packages will fail" >&2
  fi
}}"""

_LISTS_IN_BACKGROUND = f"""lists_in_background() {{
  # apt's lists fetched while Ansible starts; the play waits for them before its roles
  if ! command -v flock >/dev/null 2>&1; then fresh_lists; return 0; fi
  mkdir -p {APT_HELPERS}
  exec 9>{LISTS_LOCK}
  flock 9
  (fresh_lists) </dev/null >{LISTS_LOG} 2>&1 &
  exec 9>&-
}}"""

_PYTHON_APT_CACHED = f"""python_apt_cached() {{
  key=$(. /etc/os-release && echo "$ID")-$(apt-get --version | head -n 1 | cut -d' ' -f2)
  key=$key-$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  key=$key-$(dpkg --print-architecture)
  dir={PYTHON_APT_HOME}/python3-apt-$key
  if [ ! -d "$dir" ]; then
    fresh_lists
    mkdir -p {PYTHON_APT_HOME}
    unpack=$(mktemp -d {PYTHON_APT_HOME}/.unpack.XXXXXX)
    if (cd "$unpack" && apt-get download -qq -o APT::Sandbox::User=root python3-apt \
      >/dev/null 2>&1 && dpkg-deb -x python3-apt_*.deb root); then
      # another build may have been first: its copy is as good
      mv -T "$unpack/root" "$dir" 2>/dev/null || true
    fi
    rm -rf "$unpack"
  fi
  [ -d "$dir" ] || return 1
  site=$(python3 -c 'import os, site
print(next(p for p in site.getsitepackages() if os.path.isdir(p)))') || return 1
  echo "$dir/usr/lib/python3/dist-packages" > "$site/rolecast-python3-apt.pth"
  echo "$site/rolecast-python3-apt.pth" > {PYTHON_APT_RECORD}
  if python3 -c 'import apt, apt_pkg; apt_pkg.init()' >/dev/null 2>&1; then return 0; fi
  rm -f "$site/rolecast-python3-apt.pth" {PYTHON_APT_RECORD}
  return 1
}}"""


# Waits for apt's lists fetched in the background, and prints what that said.
_LISTS_READY = (
    f"if [ -f {LISTS_LOCK} ] && command -v flock >/dev/null 2>&1; then "
    f"flock {LISTS_LOCK} cat {LISTS_LOG} 2>/dev/null || true; fi"
)


def lists_barrier() -> list[dict[str, object]]:
    """The play's first tasks when the bootstrap fetches apt's lists in the background:
    wait for them (while Ansible started and gathered facts, they were fetched), and say
    if apt-get update failed. Tagged `always`: a run with --tags still waits."""
    return [
        {
            "name": LISTS_TASK,
            "ansible.builtin.shell": _LISTS_READY,
            "register": "rolecast_apt_lists",
            "changed_when": False,
            "failed_when": False,
            "tags": ["always"],
        },
        {
            "name": f"{LISTS_TASK}: warning",
            "ansible.builtin.debug": {"msg": "{{ rolecast_apt_lists.stdout }}"},
            "when": "rolecast_apt_lists.stdout | default('') | length > 0",
            "tags": ["always"],
        },
    ]


def bootstrap_script(
    services: Services = "run", apt_cache: bool = False, lists_wait: bool = False
) -> list[str]:
    """Make ready what Ansible needs (python3; python3-apt for the apt module), and say
    so; then what stands in for a VM: sudo, and the service manager of `services`.
    With `apt_cache`, python3-apt comes unpacked from the cache volume, else installed
    (and purged by the clean-up). With `lists_wait` (the play waits for them: see
    `lists_barrier`), apt's lists are fetched in the background."""
    cached = apt_cache
    from_cache = "python_apt_cached" if cached else "false"
    lists = "lists_in_background" if lists_wait else "fresh_lists"
    script = f"""
set -e
{_FRESH_LISTS if cached else ""}
{_LISTS_IN_BACKGROUND if cached and lists_wait else ""}
{_PYTHON_APT_CACHED if cached else ""}
if [ -f {BOOTSTRAP_RECORD} ]; then
  echo "rolecast: resuming from a cached stage"{_resume_services(services)}
  if command -v apt-get >/dev/null 2>&1 && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1
  then
    # the apt cache volume was removed; without a mirror, only roles that use apt fail
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      echo "rolecast: apt-get update failed; roles that install packages will fail" >&2
  fi
  if command -v apt-get >/dev/null 2>&1 && ! python3 -c 'import apt' >/dev/null 2>&1; then
    # the stage's python3-apt was on a cache volume since removed: unpacked again
    {from_cache} || echo "rolecast: python3-apt is missing; roles that use apt will fail" >&2
  fi
  exit 0
fi
mkdir -p {RECORDS_DIR}
need=""
if command -v apt-get >/dev/null 2>&1; then
  command -v python3 >/dev/null 2>&1 || need="python3"
  if [ -z "$need" ] && ! python3 -c 'import apt' >/dev/null 2>&1 && ! {from_cache}; then
    need="python3-apt"
  elif [ -n "$need" ]; then
    need="$need python3-apt"
  fi
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
  # after any install: an apt-get of the install and one in the background would race
  {lists if cached else ""}
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
{_service_manager(services)}
echo "$shims" > {SHIMS_RECORD}
"""
    return [line for line in script.strip().splitlines() if line.strip()]


def stop_services_script() -> list[str]:
    """Before the commit (`services: run`): every service of the play stopped cleanly,
    nothing of the build left running, and the build notes on each service."""
    return [
        f'echo "{STOPPING_SERVICES_LINE}"',
        f"if [ -x {SERVICES_COMMAND} ]; then",
        f"  {SERVICES_COMMAND} stop >/dev/null",
        f"  {SERVICES_COMMAND} report",
        "fi",
        f'echo "{CLEANING_UP_LINE}"',
    ]


def remove_shims(record: str) -> list[str]:
    """Shell that removes the stand-ins named in `record` and puts back what they hid."""
    return [
        f"for shim in $(cat {record} 2>/dev/null); do",
        '  rm -rf "$shim"',
        f'  if [ -e "$shim{SAVED_SUFFIX}" ] || [ -L "$shim{SAVED_SUFFIX}" ]; then',
        f'    mv "$shim{SAVED_SUFFIX}" "$shim"',
        "  fi",
        "done",
    ]


def cleanup_script(
    config: ImageConfig, apt_cache: bool = False, services: Services = "run"
) -> list[str]:
    """Stop the build's services (`services: run`); then remove what the build left:
    Ansible's temp files,
    Rolecast's own packages and stand-ins, apt lists.

    With `apt_cache`, apt's lists and cache are on volumes, never committed: they stay
    for the next build."""
    lines = ["set -e"]
    if apt_cache:  # nothing of the build may run at the commit
        lines.append(f"if [ -f {LISTS_LOCK} ]; then flock {LISTS_LOCK} true || true; fi")
    if services == "run":
        lines += stop_services_script()
    if config.init == "services":
        lines += _keep_init()
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
        f'if [ -s {PYTHON_APT_RECORD} ]; then rm -f "$(cat {PYTHON_APT_RECORD})"; fi',
        *remove_shims(SHIMS_RECORD),
        f"rm -rf {TOOLS_DIR}",
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
    if services == "run":
        # What the service manager wrote about the build's services: not the image's.
        # (the service manager's log of each unit is /var/log/journal/UNIT.log)
        lines.append("rm -f /var/log/systemctl.log /var/log/systemctl.debug.log")
        lines.append(
            "find /var/log/journal -maxdepth 1 -type f -name '*.log' -delete 2>/dev/null || true"
        )
    if config.cleanup and not apt_cache:
        lines += [
            "if command -v apt-get >/dev/null 2>&1; then apt-get clean; fi",
            "rm -rf /var/lib/apt/lists/*",
        ]
    if config.cleanup:
        lines.append("rm -rf /tmp/* /var/tmp/*")
    lines.append("true")
    return lines
