#!/usr/bin/env bash
# Everything Rolecast's demo and tests need on a Debian 12 machine, made idempotently:
# a virtualenv with rolecast installed, the system packages (as root, with apt), a running
# Docker engine, and the base images of rolecast.yml. Sourced by scripts/demo and scripts/test.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ROLECAST_VENV:-$ROOT/.venv}
STATE=$ROOT/.rolecast
mkdir -p "$STATE"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit "${2:-3}"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

APT_UPDATED=0
apt_install() {
  is_root || die "missing: $*. Install them with: sudo apt-get install -y $*"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. System packages. The docker CLI alone is not enough: the engine (dockerd) must be here.
missing=()
command -v dockerd >/dev/null || docker info >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v packer >/dev/null || missing+=(packer)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
command -v ssh >/dev/null || missing+=(openssh-client) # for connection: proxy
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server) # the ssh engine test
command -v tar >/dev/null || missing+=(tar)
command -v git >/dev/null || missing+=(git) # requirements from git, and git tags
command -v ip >/dev/null || missing+=(iproute2) # the tests' second engine gets its own bridge
command -v unshare >/dev/null || missing+=(util-linux)
command -v tmux >/dev/null || missing+=(tmux) # the tests look at the live view in a terminal
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt_install "${missing[@]}"
fi

# 2. Python: a virtualenv with rolecast and its dev tools, reinstalled when pyproject changes.
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate
      break
    fi
  done
fi
[ -n "$PYTHON" ] || die "Python 3.11 or newer is needed (Debian 12: apt-get install python3)"
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    "$PYTHON" -m venv "$VENV"
  fi
fi
stamp="$VENV/.rolecast-installed"
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing rolecast and its dev tools into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
  echo "$want" >"$stamp"
fi
export PATH="$VENV/bin:$PATH"

# 3p. Podman's API service, with Rolecast's containers.conf (scripts/podman/), started here
# when its socket does not answer; PODMAN_HOST names it. With ROLECAST_ENGINE=podman it is
# the engine (DOCKER_HOST); scripts/test starts it beside Docker too, for the Podman test.
start_podman() {
  command -v podman >/dev/null || apt_install podman
  is_root || die "the Podman API service is started as root here (sudo ./scripts/setup.sh)"
  local socket=${ROLECAST_PODMAN_SOCKET:-/run/rolecast-podman/podman.sock}
  export CONTAINERS_CONF=$ROOT/scripts/podman/containers.conf
  if ! curl -sf --max-time 5 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1; then
    mkdir -p "$(dirname "$socket")"
    say "starting podman system service on $socket (log: $STATE/podman.log)"
    nohup setsid podman system service --time=0 "unix://$socket" >"$STATE/podman.log" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
      curl -sf --max-time 5 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 && break
      sleep 0.5
    done
    curl -sf --max-time 5 --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 ||
      die "the Podman API service did not come up; see $STATE/podman.log"
  fi
  PODMAN_HOST=unix://$socket
  say "podman $(podman --remote --url "$PODMAN_HOST" version --format '{{.Server.Version}}' 2>/dev/null) answers at $PODMAN_HOST"
  # The base image, from a Docker engine that has it (faster than debootstrap): saved, loaded.
  local base=rolecast/debian-bookworm:bookworm
  if ! podman --remote --url "$PODMAN_HOST" image exists "$base" &&
    DOCKER_HOST= timeout 20 docker image inspect "$base" >/dev/null 2>&1; then
    say "loading $base from Docker into Podman"
    DOCKER_HOST= docker save "$base" | podman --remote --url "$PODMAN_HOST" load >/dev/null
  fi
}

if [ "${ROLECAST_ENGINE:-}" = podman ]; then
  start_podman
  export DOCKER_HOST=$PODMAN_HOST
  (cd "$ROOT" && rolecast bases)
  return 0 2>/dev/null || exit 0
fi

# 3. A Docker engine that answers; started here when none does.
if ! timeout 20 docker info >/dev/null 2>&1; then
  if [ -n "${DOCKER_HOST:-}" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  fi
  is_root || die "no Docker engine answers; start it (sudo dockerd &) or add yourself to the docker group"
  say "starting dockerd (log: $STATE/dockerd.log)"
  nohup setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 20 docker info >/dev/null 2>&1 || die "dockerd did not come up; see $STATE/dockerd.log"
fi
say "docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"

# 4. The base images the example spec builds from: present, pulled, or made with debootstrap.
(cd "$ROOT" && rolecast bases)
