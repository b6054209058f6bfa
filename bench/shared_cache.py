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
from fleet import IMAGES, ROLECAST, make_project, timed_events


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


def wipe(root: Path, registry: str = "rolecast-bench/") -> None:
    """What a new runner lacks: the project's images (and what it pulled from `registry`),
    stages, apt volumes and state."""
    from orchestrator.engines import connect
    from orchestrator.names import project_identity, stage_prefix

    engine = connect()
    identity = project_identity(root)
    for image in engine.images():
        for tag in image.tags:
            if tag.startswith(("rolecast-bench/", registry, stage_prefix(identity))):
                engine.remove_image(tag)
    forget_apt_volumes(root, IMAGES)
    shutil.rmtree(root / ".rolecast", ignore_errors=True)


def timed(argv: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall time, containers the engine created meanwhile, and what the command printed."""
    printed: list[str] = []

    def keep(args: list[str], where: Path) -> tuple[float, str]:
        elapsed, output = run(args, where)
        printed.append(output)
        return elapsed, output

    elapsed, created = timed_events(argv, cwd, keep)
    return elapsed, created, printed[0]


def in_registry(pushed: dict[str, str], port: int) -> bool:
    """Whether the registry has the pushed tag with the reported digest."""
    reference = pushed["reference"].split("/", 1)[1]
    name, _, tag = reference.rpartition(":")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return bool(answer.headers.get("Docker-Content-Digest") == pushed["digest"])


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
        spec = root / "rolecast.yml"
        spec.write_text(spec.read_text().replace("rolecast-bench", f"localhost:{port}/team"))
        try:
            wipe(root, f"localhost:{port}/")
            first, _ = run([ROLECAST, "build", "--plain", "--no-cache"], root)
            shared, _ = run([ROLECAST, "build", "--plain", "--push", "--cache-to", cache], root)
            wipe(root, f"localhost:{port}/")
            second, created, output = timed(
                [ROLECAST, "build", "--json", "--push", "--cache-from", cache], root
            )
            report = json.loads(output)["images"]
            pushed = sum(len(i["pushed"]) for i in report)
            wrong = [
                p["reference"] for i in report for p in i["pushed"] if not in_registry(p, port)
            ]
            pulled = sum(len(i["stages_pulled"]) for i in report)
            results = sorted({i["result"] for i in report})
            wipe(root, f"localhost:{port}/")
            third, created_pull, output = timed(
                [ROLECAST, "build", "--json", "--cache-from", cache], root
            )
            pulled_then = sum(len(i["stages_pulled"]) for i in json.loads(output)["images"])
        finally:
            registry.terminate()
            registry.wait(30)
        wipe(root, f"localhost:{port}/")
    lines = [
        f"Fleet of {len(IMAGES)} images; a second runner with an empty image store, every "
        "image already in the registry",
        "",
        "| build | wall time | containers | ratio |",
        "|---|---|---|---|",
        f"| runner 1: no cache | {first:.1f} s | | 1.00 |",
        f"| runner 1: push, sharing its stages and images (--cache-to) | {shared:.1f} s | | "
        f"{shared / first:.2f} |",
        f"| runner 2: build --push --cache-from, empty image store | {second:.1f} s | "
        f"{created} | {second / first:.3f} |",
        f"| runner 2: build --cache-from (no push), empty image store | {third:.1f} s | "
        f"{created_pull} | {third / first:.3f} |",
        "",
        f"Runner 2 with --push: results {', '.join(results)}; {pulled} stages pulled; "
        f"{pushed} tags added in the registry, {len(wrong)} of them without the reported "
        f"digest{': ' + ', '.join(wrong) if wrong else ''}. Without --push it pulled "
        f"{pulled_then} stages.",
        "",
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
