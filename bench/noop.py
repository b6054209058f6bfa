"""Benchmark: a no-op rebuild of bench/fleet.py's 10-image fleet (nothing changed, so no
container starts), and where its process start goes.

    .venv/bin/python bench/noop.py DIR [--runs 5] [--registry rolecast-noop] [--imports 25]

DIR keeps the fleet project between runs: it is written (fleet.py's `make_project`, its
images under `--registry`) and built once when it holds no rolecast.yml yet; each later run
only times `rolecast build --plain` with nothing changed. Prints the median wall time, the
containers created (from Docker events: zero expected), the load average, and the slowest
imports of one run (`python -X importtime`, by cumulative time). Remove the fleet's images
afterwards with `docker rmi` of the registry's repositories.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import run_once, run_timed, say
from fleet import IMAGES, ROLECAST, make_project, timed


def ensure_built(root: Path, registry: str) -> None:
    if (root / "rolecast.yml").is_file():
        return
    root.mkdir(parents=True, exist_ok=True)
    make_project(root)
    spec = json.loads((root / "rolecast.yml").read_text())
    spec["defaults"]["registry"] = registry  # not the fleet benchmark's images
    (root / "rolecast.yml").write_text(json.dumps(spec, indent=2))
    say(f"building the fleet once in {root}")
    run_timed([ROLECAST, "build", "--plain"], root)


def import_times(root: Path, top: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of one no-op's imports, slowest first."""
    argv = [sys.executable, "-X", "importtime", "-m", "orchestrator", "build", "--plain"]
    _, done = run_once(argv, root)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|")
        rows.append((int(cumulative), int(own), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--registry", default="rolecast-noop")
    parser.add_argument("--imports", type=int, default=25)
    args = parser.parse_args()
    root = args.root.resolve()
    ensure_built(root, args.registry)
    argv = [ROLECAST, "build", "--plain"]
    run_timed(argv, root)  # warm the page cache
    walls = [run_timed(argv, root)[0] for _ in range(args.runs)]
    _, containers = timed(argv, root)
    load = os.getloadavg()
    print(
        f"No-op rebuild of {len(IMAGES)} images: median {statistics.median(walls):.2f} s of "
        f"{args.runs} ({', '.join(f'{w:.2f}' for w in walls)}), {containers} containers; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs"
    )
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("(PYTHONDONTWRITEBYTECODE is set: every run compiles Rolecast's modules)")
    print("\n| cumulative ms | self ms | module |\n|---|---|---|")
    for cumulative, own, name in import_times(root, args.imports):
        print(f"| {cumulative / 1000:.1f} | {own / 1000:.1f} | `{name}` |")


if __name__ == "__main__":
    main()
