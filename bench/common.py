"""What every benchmark does the same way: run a command as a user would, timed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def run_timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Run `argv` with this installation's tools first on PATH; (wall seconds, stdout).
    A failure ends the benchmark with the command's output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["CHECKPOINT_DISABLE"] = "1"
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{' '.join(argv[:3])} failed (exit {done.returncode})")
    return elapsed, done.stdout


def forget(root: Path) -> None:
    """Remove what a benchmark's project left in the engine: its stages and apt volumes
    (each run is a new checkout, with caches of its own)."""
    import json

    from orchestrator.engines import connect
    from orchestrator.names import PROJECT_LABEL, project_identity

    rolecast = str(Path(sys.executable).parent / "rolecast")
    _, listed = run_timed([rolecast, "cache", "ls", "--json"], root)
    engine = connect()
    for stage in json.loads(listed):
        engine.remove_image(stage["reference"])
    for volume in engine.volumes(f"{PROJECT_LABEL}={project_identity(root)}"):
        engine.remove_volume(volume.name)
