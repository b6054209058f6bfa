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
