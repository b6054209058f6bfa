"""What every benchmark does the same way: run a command as a user would, timed; read
where rolecast's time went from its build report."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

Phases = dict[str, float]  # phase name -> seconds, in the order the phases happened
NO_PHASES = "(no phase timings in this version)"


def run_once(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `argv` with this installation's tools first on PATH; (wall seconds, what it did)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["CHECKPOINT_DISABLE"] = "1"
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    return time.monotonic() - started, done


def run_timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    """`run_once`, checked: (wall seconds, stdout). A failure ends the benchmark with the
    command's output."""
    elapsed, done = run_once(argv, cwd)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{' '.join(argv[:3])} failed (exit {done.returncode})")
    return elapsed, done.stdout


def say(message: str) -> None:
    """What a benchmark did besides its measurements (on stderr: stdout is the tables')."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def forget(root: Path) -> None:
    """Remove what a benchmark's project left in the engine: its stages and apt volumes
    (each run is a new checkout, with caches of its own)."""
    from orchestrator.engines import connect
    from orchestrator.names import PROJECT_LABEL, project_identity

    rolecast = str(Path(sys.executable).parent / "rolecast")
    _, listed = run_timed([rolecast, "cache", "ls", "--json"], root)
    engine = connect()
    for stage in json.loads(listed):
        engine.remove_image(stage["reference"])
    for volume in engine.volumes(f"{PROJECT_LABEL}={project_identity(root)}"):
        engine.remove_volume(volume.name)


def forget_apt_volumes(root: Path, images: Iterable[str]) -> int:
    """Remove the project's apt cache volumes of these images, so that the next build
    downloads its packages as a first build does; how many there were."""
    from orchestrator.engines import connect
    from orchestrator.names import apt_volumes, project_identity

    engine = connect()
    identity = project_identity(root)
    return sum(
        engine.remove_volume(volume) for slug in images for volume in apt_volumes(identity, slug)
    )


def report_phases(report: Path) -> list[Phases] | None:
    """The `phases` of each image in a `rolecast build --report` file; None when this
    version of rolecast records none."""
    images = json.loads(report.read_text())["images"]
    found = [image["phases"] for image in images if isinstance(image.get("phases"), dict)]
    if not found:
        return None
    return [{str(name): float(seconds) for name, seconds in p.items()} for p in found]


def summed(phases: Iterable[Phases]) -> Phases:
    """Several images' phases as one: each phase's seconds added up."""
    total: Phases = {}
    for image in phases:
        for name, seconds in image.items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def phase_table(caption: str, rows: list[tuple[str, list[Phases]]]) -> str:
    """A Markdown table of where rolecast's time went: a row per build (the median of its
    runs), a column per phase in the order the phases first happened, and their sum."""
    columns: list[str] = []
    for _, runs in rows:
        for run in runs:
            columns += [name for name in run if name not in columns]
    if not columns:
        return "\n".join([caption, "", NO_PHASES, ""])
    lines = [
        caption,
        "",
        "| build | " + " | ".join(columns) + " | sum |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for label, runs in rows:
        medians = {
            name: statistics.median(run[name] for run in runs if name in run)
            for name in columns
            if any(name in run for run in runs)
        }
        cells = [f"{medians[name]:.1f}" if name in medians else "—" for name in columns]
        total = f"{sum(medians.values()):.1f}" if medians else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total} |")
    lines.append("")
    return "\n".join(lines)
