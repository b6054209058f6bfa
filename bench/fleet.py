"""Benchmark: a fleet of 10 images, built by `rolecast build` and by a hand-written Packer
template doing the same work, in the same run.

    .venv/bin/python bench/fleet.py [--out FILE]

(a) a full build of the fleet (rolecast --no-cache; the template always builds all), with
no apt cache volumes (removed first: cold), (a') the same again with the apt cache volumes
(a) left (warm; the template has no such cache: its figure is (a)'s), (b) a rebuild with
nothing changed (rolecast: zero containers, counted from Docker events), (c) a rebuild
after a template change in the last of the four roles of one image (rolecast resumes
from the cached stage; the template rebuilds that image).
Prints a Markdown table of wall times and ratios, and one of where rolecast's time went
(its build reports' phases, summed over the images). Needs what the engine tests need.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    Phases,
    forget,
    forget_apt_volumes,
    phase_table,
    report_phases,
    run_timed,
    say,
    summed,
)
from handwritten import ansible_provisioner

BASE = "rolecast/debian-bookworm:bookworm"
ROLECAST = str(Path(sys.executable).parent / "rolecast")
ROLES = ["web", "users", "config", "site"]
IMAGES = {"four": ROLES, **{f"svc{i}": ROLES[: 1 + i % 3] for i in range(1, 10)}}


def role_tasks(role: str) -> list[dict[str, Any]]:
    """Small tasks of the kinds real roles are made of: `web` installs packages, `site`
    renders a template."""
    base = f"/opt/{role}"
    tasks: list[dict[str, Any]] = [
        {"name": "Directory", "ansible.builtin.file": {"path": base, "state": "directory"}},
        {
            "name": "Settings",
            "ansible.builtin.lineinfile": {
                "path": f"{base}/settings.conf",
                "line": f"role={role}",
                "create": True,
                "mode": "0644",
            },
        },
        {"name": "Probe", "ansible.builtin.command": "uname -r", "changed_when": False},
    ]
    if role == "web":  # real roles install packages
        tasks.append(
            {
                "name": "Packages",
                "ansible.builtin.apt": {
                    "name": ["less", "curl"],
                    "update_cache": True,
                    "install_recommends": False,
                },
            }
        )
    for i in range(3):
        tasks.append(
            {
                "name": f"File {i}",
                "ansible.builtin.copy": {
                    "content": f"{role} {i}\n",
                    "dest": f"{base}/f{i}.txt",
                    "mode": "0644",
                },
            }
        )
    if role == "site":
        tasks.append(
            {
                "name": "Site config",
                "ansible.builtin.template": {"src": "site.conf.j2", "dest": f"{base}/site.conf"},
            }
        )
    return tasks


def make_project(root: Path) -> None:
    for role in ROLES:
        (root / "roles" / role / "tasks").mkdir(parents=True)
        (root / "roles" / role / "tasks" / "main.yml").write_text(json.dumps(role_tasks(role)))
    (root / "roles" / "site" / "templates").mkdir()
    (root / "roles" / "site" / "templates" / "site.conf.j2").write_text(
        "site on {{ ansible_hostname }}, version 1\n"
    )
    spec = {
        "version": 1,
        "defaults": {"registry": "rolecast-bench", "tags": ["rolecast"]},
        "images": {
            name: {"from": BASE, "roles": roles, "config": {"cmd": ["/bin/bash"]}}
            for name, roles in IMAGES.items()
        },
    }
    (root / "rolecast.yml").write_text(json.dumps(spec, indent=2))
    # What a user writes by hand: a docker source and a build per image, the ansible
    # provisioner with its defaults (SSH proxy adapter) and the options OpenSSH 9 needs.
    sources: dict[str, Any] = {}
    builds: list[dict[str, Any]] = []
    for name, roles in IMAGES.items():
        playbook = root / f"{name}.yml"
        playbook.write_text(json.dumps([{"hosts": "all", "roles": roles}]))
        sources[name] = {
            "image": BASE,
            "commit": True,
            "pull": False,
            "changes": ['CMD ["/bin/bash"]'],
        }
        builds.append(
            {
                "name": name,
                "sources": [f"source.docker.{name}"],
                "provisioner": [ansible_provisioner(playbook, root / "roles")],
                "post-processor": [
                    {"docker-tag": {"repository": f"rolecast-bench/{name}", "tags": ["packer"]}}
                ],
            }
        )
    template = {"source": {"docker": sources}, "build": builds}
    (root / "fleet.pkr.json").write_text(json.dumps(template, indent=2))


def timed(argv: list[str], cwd: Path, prefix: str = "") -> tuple[float, int]:
    """Wall time of a command, and how many containers the Docker engine created meanwhile
    (counted from a live event stream: the engine keeps only its last 256 events), only
    those named with `prefix` when given."""
    return timed_events(argv, cwd, run_timed, prefix)


def ours(root: Path) -> str:
    """The name prefix of a project's containers (builds and gates), not other people's."""
    from orchestrator.names import CONTAINER_PREFIX, project_identity

    return f"{CONTAINER_PREFIX}{project_identity(root)}-"


def timed_events(
    argv: list[str],
    cwd: Path,
    runner: Callable[[list[str], Path], tuple[float, str]],
    prefix: str = "",
) -> tuple[float, int]:
    """`runner(argv, cwd)`'s wall time, and the containers created meanwhile (named with
    `prefix`: a Packer template's are unnamed, so it counts every container)."""
    import threading

    from orchestrator.engines import connect

    engine = connect()
    stream = engine.events({"type": "container", "event": "create"})
    created: list[str] = []
    named: list[str] = []

    def count() -> None:
        try:
            for event in stream:
                created.append(str(event.get("id")))
                name = str((event.get("Actor") or {}).get("Attributes", {}).get("name", ""))
                if name.startswith(prefix):
                    named.append(str(event.get("id")))
        except Exception:  # the stream is closed when the command is done
            return

    listener = threading.Thread(target=count, daemon=True)
    listener.start()
    elapsed, _ = runner(argv, cwd)
    # A marker container's event closes the window: every earlier event has arrived.
    marker = engine.run(BASE, ["true"], entrypoint="")
    while marker.id not in created:
        time.sleep(0.05)
    marker.remove()
    stream.close()
    return elapsed, len([c for c in named if c != marker.id])


class Rolecast:
    """`rolecast build` in the project, each run with its report; its phases, by case."""

    def __init__(self, root: Path, reports: Path) -> None:
        self.root = root
        self.reports = reports
        self.phases: list[tuple[str, list[Phases]]] = []

    def build(self, case: str, *options: str) -> tuple[float, int]:
        report = self.reports / f"{len(self.phases)}.json"
        argv = [ROLECAST, "build", "--plain", "--report", str(report), *options]
        result = timed(argv, self.root, ours(self.root))
        self.phases.append((case, [summed(report_phases(report) or [])]))
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows: list[tuple[str, float, int, float | None, int]] = []
    with tempfile.TemporaryDirectory(prefix="rolecast-fleet-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (Path(tmp) / "reports").mkdir()
        rolecast = Rolecast(root, Path(tmp) / "reports")
        make_project(root)
        try:
            packer_all = ["packer", "build", "fleet.pkr.json"]
            removed = forget_apt_volumes(root, IMAGES)
            say(f"removed {removed} apt cache volumes of the project before the cold build")
            cold = "(a) full build, cold (no apt volumes)"
            rc_full = rolecast.build(cold, "--no-cache")
            pk_full = timed(packer_all, root)
            rows.append((cold, *rc_full, *pk_full))
            warm = "(a') full build, warm apt volumes"
            rc_warm = rolecast.build(warm, "--no-cache")
            rows.append((warm, *rc_warm, None, pk_full[1]))  # a template has no apt cache
            rc_noop = rolecast.build("(b) rebuild, nothing changed")
            pk_noop = timed(packer_all, root)  # a template cannot tell that nothing changed
            rows.append(("(b) rebuild, nothing changed", *rc_noop, *pk_noop))
            rc_image = timed(
                [ROLECAST, "build", "--plain", "--force", "four", "four"], root, ours(root)
            )
            template = root / "roles" / "site" / "templates" / "site.conf.j2"
            template.write_text(template.read_text().replace("version 1", "version 2"))
            last = "(c) last role's template changed, image `four`"
            rc_last = rolecast.build(last, "four")
            pk_last = timed(["packer", "build", "-only=four.docker.four", "fleet.pkr.json"], root)
            rows.append((last, *rc_last, *pk_last))
            history = subprocess.run(
                [ROLECAST, "history", "--json", "-n", "1", "four"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            )
            ran = json.loads(history.stdout)[0]["stages_run"]
        finally:
            forget(root)
    lines = [
        f"Fleet of {len(IMAGES)} images (image `four` has {len(ROLES)} roles), "
        f"{os.cpu_count()} CPUs; rolecast builds with -j {os.cpu_count()}",
        "",
        "| case | rolecast | containers | hand-written template | containers | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for case, r, rn, p, pn in rows:
        if p is None:  # (a'): the template's full build is (a)'s
            p = pk_full[0]
            lines.append(f"| {case} | {r:.1f} s | {rn} | {p:.1f} s (a) | {pn} | {r / p:.3f} |")
        else:
            lines.append(f"| {case} | {r:.1f} s | {rn} | {p:.1f} s | {pn} | {r / p:.3f} |")
    lines += [
        "",
        "containers: rolecast's are its project's own (by name); the template's are every "
        "container the engine created meanwhile (Packer's are unnamed).",
        f"(a) removed {removed} apt cache volumes first; (a') kept those (a) made: the "
        "template has no apt cache, so its full build is (a)'s.",
        f"(c) ran the stages {', '.join(ran)}; against rolecast's own full build of `four` "
        f"({rc_image[0]:.1f} s) the ratio is {rc_last[0] / rc_image[0]:.2f} "
        "(target: at most 0.35).",
        f"(b) no-op rebuild of {len(IMAGES)} images: {rc_noop[0]:.2f} s wall, "
        f"{rc_noop[1]} containers (target: at most 0.5 s, zero containers).",
        "",
        phase_table(
            "Where rolecast's time went (seconds per phase, summed over the images built: "
            f"-j {os.cpu_count()} builds several at once)",
            rolecast.phases,
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
