#!/usr/bin/env python3
"""Rolecast's service manager for a build: services run during the play, as on a VM, and
every one of them is stopped cleanly before a commit.

It runs inside the build container with the image's python3 (3.8 or later) and imports
nothing of Rolecast's. `systemctl` in the container is a wrapper that runs
`services.py systemctl ARGS`: the work is done by docker-systemctl-replacement
(`systemctl3.py`, beside this file), which interprets unit files and SysV scripts with no
systemd running; this script records which units the play started, in order.

    services.py systemctl ARGS...   systemctl, recording starts
    services.py stop                before a commit: stop every service (reverse start
                                    order), stop what is left below PID 1, clear runtime
                                    files (PID files, sockets, locks)
    services.py resume              after a stage commit, or when a build resumes from a
                                    cached stage: start again what ran at the stop
    services.py report              the build notes: each service the play started
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = "/var/lib/rolecast-build"
LOG = RECORDS + "/services.jsonl"  # one line per start, stop or kill, kept across stages
RUNNING = RECORDS + "/services-running"  # what ran at the last stop, in start order
SYSTEMCTL = [sys.executable, os.path.join(HERE, "systemctl3.py")]
STOP_TIMEOUT = int(os.environ.get("ROLECAST_STOP_TIMEOUT", "20"))
KILL_WAIT = 5.0  # seconds between SIGTERM and SIGKILL for what no service manager stops
STARTS = {
    "start",
    "restart",
    "try-restart",
    "reload-or-restart",
    "try-reload-or-restart",
    "condrestart",
    "force-reload",
}
WITH_VALUE = {
    "-t", "--type", "--state", "-p", "--property", "--what", "--job-mode", "--kill-who",
    "-s", "--signal", "--preset-mode", "--root", "-n", "--lines", "-o", "--output",
    "--maxtimeout", "-c", "--config", "-e", "--extra-vars", "--environment",
}  # fmt: skip
RUNTIME_TREES = ("/run", "/tmp", "/var/tmp")
SOCKET = 0o140000
KEEP_ALIVE_MARK = b"ROLECAST_KEEP_ALIVE=1"  # provision.KEEP_ALIVE_MARK: this file runs alone


def unit_name(word: str) -> str:
    return word if "." in word else word + ".service"


def parse(args: list[str]) -> tuple[str, list[str]]:
    """(action, units) of a systemctl command line."""
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    return (words[0], [unit_name(w) for w in words[1:]]) if words else ("", [])


def record(**entry: Any) -> None:
    os.makedirs(RECORDS, exist_ok=True)
    with open(LOG, "a") as out:
        out.write(json.dumps(entry) + "\n")


def entries() -> list[dict[str, Any]]:
    try:
        with open(LOG) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def ask(*args: str, timeout: int = 60) -> tuple[int, str]:
    """systemctl3's answer (exit code, output), with every timeout it knows capped."""
    argv = [*SYSTEMCTL, "--maxtimeout", str(timeout), *args]
    try:
        done = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout + 10,
        )
    except subprocess.TimeoutExpired:
        return 124, ""
    return done.returncode, done.stdout


def is_active(unit: str) -> bool:
    return ask("is-active", unit, timeout=10)[0] == 0


def main_pid(unit: str) -> int | None:
    code, out = ask("show", "-p", "MainPID", unit, timeout=10)
    value = out.strip().partition("=")[2]
    return int(value) if code == 0 and value.isdigit() and int(value) > 1 else None


def systemctl(args: list[str]) -> int:
    """systemctl as the play calls it. A start is recorded; one that says it worked while
    nothing runs is recorded as such (a VM's systemd would show the unit failed)."""
    action, units = parse(args)
    if action in ("enable", "reenable") and "--now" in args:
        action = "start"  # `enable --now` starts the unit too
    if action not in STARTS or not units:
        return subprocess.call([*SYSTEMCTL, *args])
    before = set(left_below_init())
    code = subprocess.call([*SYSTEMCTL, *args])
    # What the start left running belongs to the unit, as its cgroup would on a VM (a
    # forking daemon without PIDFile= has no main PID the manager knows).
    new = sorted(set(left_below_init()) - before)
    for unit in units:
        active = code == 0 and is_active(unit)
        record(event="start", unit=unit, action=action, code=code, active=active, pids=new)
    return code


def started_units() -> list[str]:
    """The services the play (or a package's scripts) started, in the order first started.
    (The manager runs no timers: a timer's start does nothing.)"""
    order: list[str] = []
    for entry in entries():
        if entry["event"] != "start" or entry["unit"].endswith(".timer"):
            continue
        if entry["unit"] not in order:
            order.append(entry["unit"])
    return order


def processes() -> dict[int, tuple[int, str, str]]:
    """{pid: (parent pid, state, command line)} of the processes in the container."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        found[int(name)] = (int(fields[1]), fields[0], argv or f"[{comm}]")
    return found


def left_below_init() -> dict[int, str]:
    """Live processes below PID 1 (the container's command): services and daemons end up
    there. What the build itself runs (`docker exec`: Ansible, this script) has parent 0."""
    table = processes()

    def under_init(pid: int) -> bool:
        seen = set()
        while pid not in (0, 1) and pid in table and pid not in seen:
            seen.add(pid)
            pid = table[pid][0]
        return pid == 1

    return {
        pid: info[2]
        for pid, info in table.items()
        if pid != 1 and info[1] not in ("Z", "X") and under_init(pid) and not keeps_alive(pid)
    }


def keeps_alive(pid: int) -> bool:
    """The sleep of the build container's command (it reaps orphans as PID 1): no service."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return KEEP_ALIVE_MARK in f.read().split(b"\0")
    except OSError:
        return False


def alive(pid: int) -> bool:
    info = processes().get(pid)
    return info is not None and info[1] not in ("Z", "X")


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        still = [p for p in pids if alive(p)]
        if not still or time.monotonic() >= deadline:
            return still
        time.sleep(0.2)


def descendants(pid: int) -> list[int]:
    table = processes()
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, info in table.items() if info[0] == parent]
        found += children
        todo += children
    return found


def family(unit: str, log: list[dict[str, Any]]) -> list[int]:
    """The unit's processes: its main process, what its starts left running, and what
    those started since."""
    pid = main_pid(unit)
    roots = {pid} if pid is not None else set()
    for entry in log:
        if entry["event"] == "start" and entry["unit"] == unit:
            roots |= set(entry.get("pids", []))
    below = left_below_init()
    members = {p for p in roots if p in below}
    for root in list(members):
        members |= set(descendants(root))
    return sorted(members)


def stop_unit(unit: str, log: list[dict[str, Any]]) -> None:
    """Stop one unit with its own stop command (ExecStop, or its kill signal), bounded by
    STOP_TIMEOUT; then, as systemd does with the unit's cgroup, SIGTERM what is left of
    it. Only what needed SIGKILL (or the manager's own kill at the timeout) makes the
    unit recorded as killed."""
    members = family(unit, log)
    started = time.monotonic()
    code, out = ask("stop", unit, timeout=STOP_TIMEOUT)
    timed_out = time.monotonic() - started >= STOP_TIMEOUT
    left = [p for p in members if alive(p)]
    for p in left:
        kill(p, signal.SIGTERM)
    stubborn = wait_gone(left, KILL_WAIT)
    for p in stubborn:
        kill(p, signal.SIGKILL)
    if stubborn or timed_out:
        record(event="kill", unit=unit, seconds=STOP_TIMEOUT, output=out.strip()[-300:])
    else:
        record(event="stop", unit=unit, code=code)


def stop_strays() -> None:
    """What still runs below PID 1 was started outside the service manager (a `nohup`,
    an init script's daemon): SIGTERM, then SIGKILL; each is recorded by name."""
    left = left_below_init()
    for pid in left:
        kill(pid, signal.SIGTERM)
    stubborn = wait_gone(list(left), KILL_WAIT)
    for pid in stubborn:
        kill(pid, signal.SIGKILL)
    wait_gone(stubborn, KILL_WAIT)
    for pid, command in sorted(left.items()):
        record(event="stray", pid=pid, command=command[:200], killed=pid in stubborn)


def runtime_directories(unit: str) -> list[tuple[str, int, str, str]]:
    """(path, mode, user, group) of each `RuntimeDirectory=` of a unit: the image keeps
    them, since a daemon its command starts needs them (sshd needs /run/sshd)."""
    code, text = ask("cat", unit, timeout=10)
    if code != 0:
        return []
    section, settings = "", {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    mode = int(settings.get("RuntimeDirectoryMode", "0755"), 8)
    user, group = settings.get("User", ""), settings.get("Group", "")
    return [
        ("/run/" + name, mode, user, group) for name in settings.get("RuntimeDirectory", "").split()
    ]


def keep_directory(path: str, mode: int, user: str, group: str) -> None:
    import grp
    import pwd

    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(0)
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
        os.chown(path, entry.pw_uid, gid)
    except (KeyError, OSError):
        pass


def clear_runtime_files() -> None:
    """PID files, sockets, locks and the service manager's status files of the build do
    not stay in the image. Directories stay: a daemon the image's command starts may need
    them."""
    for top in RUNTIME_TREES:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]
            for name in files:
                path = os.path.join(folder, name)
                try:
                    socket = os.lstat(path).st_mode & 0o170000 == SOCKET
                except OSError:
                    continue
                runtime = name.endswith((".pid", ".lock", ".status")) or name.startswith(".s.")
                if socket or (top == "/run" and runtime):
                    os.unlink(path)


def stop() -> int:
    """Before a commit: every service stopped, in reverse start order; then nothing of
    the build left running below PID 1, and no runtime file of it left."""
    log = entries()
    running = [u for u in started_units() if is_active(u)]
    for unit in reversed(running):
        stop_unit(unit, log)
    stop_strays()
    for unit in running:
        for directory in runtime_directories(unit):
            keep_directory(*directory)
    clear_runtime_files()
    os.makedirs(RECORDS, exist_ok=True)
    with open(RUNNING, "w") as out:
        out.write("".join(u + "\n" for u in running))
    print("".join(u + "\n" for u in running), end="")  # the stage's resume runs if any
    return 0


def resume() -> int:
    """Start again what ran at the last stop, as a VM comes back up with its services."""
    try:
        with open(RUNNING) as f:
            units = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return 0
    failed = [u for u in units if systemctl(["start", u]) != 0]
    for unit in failed:
        print(f"rolecast: warning: service {unit}, running at the last stop, did not start")
    return 1 if failed else 0


def fate(unit: str, log: list[dict[str, Any]]) -> str:
    events = [e["event"] for e in log if e.get("unit") == unit]
    if "kill" in events:
        return "killed: it did not stop in time"
    if "stop" in events:
        return "running, stopped cleanly"
    return "not running when stopped"


def report() -> int:
    """One note naming each service of the play, and a warning for each thing to look at."""
    log = entries()
    order = started_units()
    if order:
        listed = ", ".join(f"{u} ({fate(u, log)})" for u in order)
        print(f"rolecast: services started during the play: {listed}")
    for unit in order:
        mine = [e for e in log if e.get("unit") == unit]
        false_starts = [e for e in mine if e["event"] == "start" and e["code"] == 0]
        false_starts = [e for e in false_starts if not e["active"]]
        if false_starts:
            print(
                f"rolecast: warning: {false_starts[0]['action']} {unit} reported success but "
                "the service was not running (a VM's systemd would show the unit failed)"
            )
        for kill_entry in [e for e in mine if e["event"] == "kill"][:1]:
            print(
                f"rolecast: warning: service {unit} did not stop within "
                f"{kill_entry['seconds']} s and was killed"
            )
    for entry in log:
        if entry["event"] == "stray":
            how = "killed" if entry["killed"] else "stopped"
            print(
                f"rolecast: warning: process {entry['pid']} was left running outside the "
                f"service manager and was {how}: {entry['command']}"
            )
    return 0


def main(argv: list[str]) -> int:
    commands = {"stop": stop, "resume": resume, "report": report}
    if argv and argv[0] == "systemctl":
        return systemctl(argv[1:])
    if len(argv) == 1 and argv[0] in commands:
        return commands[argv[0]]()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
