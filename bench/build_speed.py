"""Benchmark: one role of 30 small tasks, built by `rolecast build` and by hand-written
Packer templates, in the same run: one with Packer's default Ansible provisioner settings
(the SSH proxy adapter), one with the docker connection Packer's documentation suggests
for the docker builder.

    .venv/bin/python bench/build_speed.py [--repeat N] [--services run|skip] [--out FILE]

Prints a Markdown table of wall times and the ratios rolecast / each hand-written template,
and one of where rolecast's time went (its build report's phases).
Needs what the engine tests need (Docker engine, packer, the base image from set-up); the
docker connection's collection (community.docker) is taken once from PyPI's `ansible`
distribution into ~/.cache/rolecast-bench (see handwritten.community_docker).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import Phases, forget, phase_table, report_phases, run_once, run_timed, say
from handwritten import (
    Collection,
    ansible_provisioner,
    community_docker,
    docker_provisioner,
    docker_run_command,
)

BASE = "rolecast/debian-bookworm:bookworm"
ROLECAST = str(Path(sys.executable).parent / "rolecast")
TASKS = 30


def role_tasks() -> list[dict[str, object]]:
    """30 small tasks of the kinds real roles are made of."""
    tasks: list[dict[str, object]] = []
    for i in range(TASKS):
        kind = i % 5
        name = f"Task {i:02d}"
        if kind == 0:
            tasks.append(
                {
                    "name": name,
                    "ansible.builtin.file": {"path": f"/opt/bench/d{i}", "state": "directory"},
                }
            )
        elif kind == 1:
            tasks.append(
                {
                    "name": name,
                    "ansible.builtin.copy": {
                        "content": f"file {i}\n",
                        "dest": f"/opt/bench/f{i}.txt",
                        "mode": "0644",
                    },
                }
            )
        elif kind == 2:
            tasks.append(
                {
                    "name": name,
                    "ansible.builtin.lineinfile": {
                        "path": "/opt/bench/settings.conf",
                        "line": f"key{i}=value{i}",
                        "create": True,
                        "mode": "0644",
                    },
                }
            )
        elif kind == 3:
            tasks.append(
                {
                    "name": name,
                    "ansible.builtin.command": f"echo {i}",
                    "changed_when": False,
                }
            )
        else:
            tasks.append(
                {
                    "name": name,
                    "ansible.builtin.template": {
                        "src": "item.j2",
                        "dest": f"/opt/bench/t{i}.conf",
                        "mode": "0644",
                    },
                    "vars": {"item_number": i},
                }
            )
    return [
        {
            "name": "Create the bench directory",
            "ansible.builtin.file": {"path": "/opt/bench", "state": "directory"},
        },
        *tasks[1:],
    ]


def make_project(root: Path, services: str, collections: Path) -> None:
    role = root / "roles" / "bench30"
    (role / "tasks").mkdir(parents=True)
    (role / "templates").mkdir()
    (role / "tasks" / "main.yml").write_text(json.dumps(role_tasks(), indent=2))
    (role / "templates" / "item.j2").write_text(
        "item {{ item_number }} on {{ ansible_hostname }}\n"
    )
    (root / "rolecast.yml").write_text(
        "version: 1\n"
        "images:\n"
        "  bench:\n"
        f"    from: {BASE}\n"
        "    roles: [bench30]\n"
        "    tags: [rolecast]\n"
        "    config: {cmd: [/bin/bash]}\n"
        f"defaults: {{registry: rolecast-bench, services: {services}}}\n"
    )
    (root / "playbook.yml").write_text(
        json.dumps([{"hosts": "all", "roles": ["bench30"]}], indent=2)
    )
    container = f"packer-bench-{uuid.uuid4().hex[:12]}"
    for name, provisioner, run_command in (
        # What a user writes by hand: the docker builder, the ansible provisioner with its
        # defaults (SSH proxy adapter), the options OpenSSH 9 needs, and a docker-tag.
        ("ssh", ansible_provisioner(root / "playbook.yml", root / "roles"), None),
        # The same with the docker connection to a named container, as Packer's
        # documentation suggests for the docker builder.
        (
            "docker",
            docker_provisioner(root / "playbook.yml", root / "roles", container, collections),
            docker_run_command(container),
        ),
    ):
        source: dict[str, Any] = {
            "image": BASE,
            "commit": True,
            "pull": False,
            "changes": ['CMD ["/bin/bash"]'],
        }
        if run_command:
            source["run_command"] = run_command
        template = {
            "source": {"docker": {"bench": source}},
            "build": {
                "sources": ["source.docker.bench"],
                "provisioner": [provisioner],
                "post-processor": [
                    {
                        "docker-tag": {
                            "repository": "rolecast-bench/bench",
                            "tags": [f"packer-{name}"],
                        }
                    }
                ],
            },
        }
        (root / f"handwritten-{name}.pkr.json").write_text(json.dumps(template, indent=2))


@dataclass
class Runs:
    """Each side's wall times, in the order of the repeats; rolecast's phases and connection."""

    root: Path
    reports: Path
    collection: Collection  # community.docker, for the docker-connection template
    docker_runs: bool  # until it fails once
    docker_failure: str = ""
    ssh: list[float] = field(default_factory=list)
    docker: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    noop: list[float] = field(default_factory=list)
    full_phases: list[Phases] = field(default_factory=list)
    noop_phases: list[Phases] = field(default_factory=list)
    connection: str = "?"

    def run_ssh(self) -> None:
        self.ssh.append(run_timed(["packer", "build", "handwritten-ssh.pkr.json"], self.root)[0])

    def run_docker(self) -> None:
        if not self.docker_runs:
            return
        elapsed, done = run_once(["packer", "build", "handwritten-docker.pkr.json"], self.root)
        if done.returncode == 0:
            self.docker.append(elapsed)
            return
        lines = [line for line in done.stdout.splitlines() if "rror" in line or "FAILED" in line]
        self.docker_runs = False
        self.docker_failure = (
            f"failed (exit {done.returncode}): {(lines or ['?'])[-1].strip()[:200]}"
        )
        say(f"the docker-connection template {self.docker_failure}")

    def run_rolecast(self) -> None:
        # --no-cache: a full build each time, as the templates do.
        self.full.append(self.rolecast("full", "--no-cache"))
        # Nothing changed since: what a pipeline run on an unchanged commit costs.
        self.noop.append(self.rolecast("noop"))

    def rolecast(self, case: str, *options: str) -> float:
        report = self.reports / f"{case}-{len(self.full)}-{len(self.noop)}.json"
        argv = [ROLECAST, "build", "--plain", "--report", str(report), *options]
        elapsed = run_timed(argv, self.root)[0]
        images = json.loads(report.read_text())["images"]
        if case == "full":
            self.connection = str(images[0].get("connection"))
        phases = report_phases(report)
        if phases:
            (self.full_phases if case == "full" else self.noop_phases).append(phases[0])
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--services", choices=["run", "skip"], default="run")
    args = parser.parse_args()
    collection = community_docker()
    say(f"community.docker {collection.version or '(none)'}: {collection.how}")
    with tempfile.TemporaryDirectory(prefix="rolecast-bench-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (Path(tmp) / "reports").mkdir()
        make_project(root, args.services, collection.path or Path(tmp) / "none")
        runs = Runs(root, Path(tmp) / "reports", collection, collection.path is not None)
        sides = [runs.run_ssh, runs.run_docker, runs.run_rolecast]
        try:
            for i in range(args.repeat):
                # Rotate the order so that no side always runs first, on a colder machine.
                for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
                    side()
        finally:
            forget(root)
    table = (
        ratio_table(runs, args)
        + "\n"
        + phase_table(
            f"Where rolecast's time went (seconds per phase, median of {args.repeat} run(s))",
            [
                ("rolecast build --no-cache", runs.full_phases),
                ("rolecast build, nothing changed", runs.noop_phases),
            ],
        )
    )
    print(table)
    if args.out:
        args.out.write_text(table)


def ratio_table(runs: Runs, args: argparse.Namespace) -> str:
    r = statistics.median(runs.full)
    p = statistics.median(runs.ssh)
    n = statistics.median(runs.noop)
    d = statistics.median(runs.docker) if runs.docker_runs else None

    def ratios(t: float, digits: int = 2) -> str:
        to_docker = f"{t / d:.{digits}f}" if d else "—"
        return f"{t / p:.{digits}f} | {to_docker}"

    docker = "hand-written Packer template (docker connection"
    if d:
        docker_row = f"| {docker}, community.docker {runs.collection.version}) | {d:.1f} s "
        docker_row += f"| {ratios(d)} |"
    else:
        why = runs.docker_failure or runs.collection.how
        docker_row = f"| {docker}) | not run: {why} | — | — |"
    return "\n".join(
        [
            f"Build of one role with {TASKS} small tasks, services: {args.services} "
            f"(median of {args.repeat} run(s))",
            "",
            "| build | wall time | ratio to template (SSH) | ratio to template (docker) |",
            "|---|---|---|---|",
            f"| hand-written Packer template (SSH proxy adapter) | {p:.1f} s | {ratios(p)} |",
            docker_row,
            f"| rolecast build --no-cache (connection auto: {runs.connection}) | {r:.1f} s "
            f"| {ratios(r)} |",
            f"| rolecast build, nothing changed (no container) | {n:.1f} s | {ratios(n, 3)} |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
