"""Benchmark: the second CI runner's build with a registry-shared stage cache, against a
build with no cache, in the same run.

    .venv/bin/python bench/shared_cache.py [--out FILE]

The fleet of bench/fleet.py (10 images). Runner 1 builds it with no cache, then shares
its stages (`--cache-to`) with a local registry (Debian's docker-registry on 127.0.0.1,
no auth). Every image, stage, apt volume and state file of the project is then removed,
as on a new runner, and runner 2 builds with `--cache-from`. Prints wall times, the
ratio, and how many stages runner 2 pulled and how many Ansible roles it ran.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import forget_apt_volumes
from common import run_timed as run
from fleet import IMAGES, ROLECAST, make_project


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    (root / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
            return process, port
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise SystemExit("docker-registry did not start")


def wipe(root: Path) -> None:
    """What a new runner lacks: the project's images, stages, apt volumes and state."""
    from orchestrator.engines import connect
    from orchestrator.names import project_identity, stage_prefix

    engine = connect()
    identity = project_identity(root)
    for image in engine.images():
        for tag in image.tags:
            if tag.startswith(("rolecast-bench/", stage_prefix(identity))):
                engine.remove_image(tag)
    forget_apt_volumes(root, IMAGES)
    shutil.rmtree(root / ".rolecast", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rolecast-shared-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        make_project(root)
        registry, port = start_registry(Path(tmp))
        cache = f"localhost:{port}/stages"
        try:
            wipe(root)
            first, _ = run([ROLECAST, "build", "--plain", "--no-cache"], root)
            shared, _ = run([ROLECAST, "build", "--plain", "--cache-to", cache], root)
            wipe(root)
            second, output = run([ROLECAST, "build", "--json", "--cache-from", cache], root)
        finally:
            registry.terminate()
            registry.wait(30)
        images = json.loads(output)["images"]
        pulled = sum(len(i["stages_pulled"]) for i in images)
        history = json.loads(run([ROLECAST, "history", "--json", "-n", "50"], root)[1])
        roles = sum(len(r["roles_run"]) for r in history[: len(images)])
        wipe(root)
    lines = [
        f"Fleet of {len(IMAGES)} images; a second runner with an empty image store",
        "",
        "| build | wall time | ratio |",
        "|---|---|---|",
        f"| runner 1: no cache | {first:.1f} s | 1.00 |",
        f"| runner 1: sharing its stages (--cache-to) | {shared:.1f} s | {shared / first:.2f} |",
        f"| runner 2: --cache-from, empty image store | {second:.1f} s | {second / first:.2f} |",
        "",
        f"Runner 2 pulled {pulled} stages and ran {roles} Ansible roles.",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
