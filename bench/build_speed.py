"""Benchmark: one role of 30 small tasks, built by `rolecast build` and by a hand-written
Packer template with Packer's default Ansible provisioner settings, in the same run.

    .venv/bin/python bench/build_speed.py [--repeat N] [--services run|skip] [--out FILE]

Prints a Markdown table of wall times and the ratio rolecast / hand-written template.
Needs what the engine tests need (Docker engine, packer, the base image from set-up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import forget, run_timed
from handwritten import ansible_provisioner

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


def make_project(root: Path, services: str = "run") -> None:
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
    # What a user writes by hand: the docker builder, the ansible provisioner with its
    # defaults (SSH proxy adapter), the options OpenSSH 9 needs, and a docker-tag.
    template = {
        "source": {
            "docker": {
                "bench": {
                    "image": BASE,
                    "commit": True,
                    "pull": False,
                    "changes": ['CMD ["/bin/bash"]'],
                }
            }
        },
        "build": {
            "sources": ["source.docker.bench"],
            "provisioner": [ansible_provisioner(root / "playbook.yml", root / "roles")],
            "post-processor": [
                {"docker-tag": {"repository": "rolecast-bench/bench", "tags": ["packer"]}}
            ],
        },
    }
    (root / "handwritten.pkr.json").write_text(json.dumps(template, indent=2))


def timed(argv: list[str], cwd: Path) -> float:
    return run_timed(argv, cwd)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--services", choices=["run", "skip"], default="run")
    args = parser.parse_args()
    rolecast_times: list[float] = []
    packer_times: list[float] = []
    noop_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rolecast-bench-") as tmp:
        root = Path(tmp)
        make_project(root, args.services)
        try:
            for _ in range(args.repeat):
                # Alternate the order so neither side always runs on a warmer machine.
                packer_times.append(timed(["packer", "build", "handwritten.pkr.json"], root))
                # --no-cache: a full build each time, as the template does.
                rolecast_times.append(timed([ROLECAST, "build", "--plain", "--no-cache"], root))
                # Nothing changed since: what a pipeline run on an unchanged commit costs.
                noop_times.append(timed([ROLECAST, "build", "--plain"], root))
        finally:
            forget(root)
    r = statistics.median(rolecast_times)
    p = statistics.median(packer_times)
    n = statistics.median(noop_times)
    table = "\n".join(
        [
            f"Build of one role with {TASKS} small tasks, services: {args.services} "
            f"(median of {args.repeat} run(s))",
            "",
            "| build | wall time | ratio to hand-written template |",
            "|---|---|---|",
            f"| hand-written Packer template (SSH proxy adapter) | {p:.1f} s | 1.00 |",
            f"| rolecast build --no-cache (connection auto: mitogen) | {r:.1f} s | {r / p:.2f} |",
            f"| rolecast build, nothing changed (no container) | {n:.1f} s | {n / p:.3f} |",
            "",
        ]
    )
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
