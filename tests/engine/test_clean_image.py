"""What a build leaves in an image: exactly what its roles do, as on a VM, and nothing of
the build (bootstrap packages, stand-ins, records, Ansible's files, apt's logs).

The image's files are compared with its parent's, path by path (type, mode, owner,
content; not times): the `docker diff` of the whole build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DATA
from .helpers import build_json, copy_project, remove_images

pytestmark = pytest.mark.engine

CLEAN = DATA / "projects" / "clean"
PARENT = "rolecast/debian-bookworm:bookworm"
IMAGE = "rolecast-test/clean/site:test"

# Every file of an image but the engine's own (mounted into every container).
SNAPSHOT = r"""
import hashlib, json, os, stat
skip = {"/proc", "/sys", "/dev", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
        "/.dockerenv"}
found = {}
for top, dirs, files in os.walk("/"):
    dirs[:] = sorted(d for d in dirs if os.path.join(top, d) not in skip)
    for name in dirs + files:
        path = os.path.join(top, name)
        if path in skip:
            continue
        info = os.lstat(path)
        kind = stat.S_IFMT(info.st_mode)
        entry = [oct(info.st_mode), info.st_uid, info.st_gid]
        if kind == stat.S_IFREG:
            with open(path, "rb") as f:
                entry.append(hashlib.sha256(f.read()).hexdigest())
        elif kind == stat.S_IFLNK:
            entry.append(os.readlink(path))
        found[path] = entry
print(json.dumps(found))
"""

# What the role does, as it would on a VM.
ROLE_ADDS = {
    "/srv/site",
    "/srv/site/index.html",
    "/etc/systemd/system/site.service",
    "/etc/systemd/system/multi-user.target.wants/site.service",
}
# What `useradd` writes on any machine: the user's entries and its backups of them.
USERADD_WRITES = {
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/passwd-",
    "/etc/group-",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/subuid",
    "/etc/subgid",
    "/etc/subuid-",
    "/etc/subgid-",
    "/var/log/lastlog",
    "/var/log/faillog",
}


def snapshot(client: Any, image: str) -> dict[str, list[Any]]:
    out = client.containers.run(image, ["python3", "-c", SNAPSHOT], remove=True, entrypoint="")
    return dict(json.loads(out))


@pytest.fixture(scope="module")
def built(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    project = copy_project(CLEAN, tmp_path_factory.mktemp("clean") / "clean")
    done, data = build_json("--plain", "--no-cache", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [i["result"] for i in data["images"]] == ["built"]
    yield project
    remove_images(docker_engine, IMAGE)


def test_the_image_differs_from_its_parent_only_by_what_its_role_does(
    built: Path, docker_engine: Any
) -> None:
    before, after = snapshot(docker_engine, PARENT), snapshot(docker_engine, IMAGE)
    added = {p for p in after if p not in before}
    removed = {p for p in before if p not in after}
    changed = {p for p in after if p in before and after[p] != before[p]}
    assert removed == set()
    assert ROLE_ADDS <= added
    assert added - ROLE_ADDS <= USERADD_WRITES, sorted(added - ROLE_ADDS)
    assert changed <= USERADD_WRITES, sorted(changed)
    assert {"/etc/passwd", "/etc/group"} <= changed
    page = docker_engine.containers.run(
        IMAGE, ["cat", "/srv/site/index.html"], remove=True, entrypoint=""
    )
    assert page == b"served by site\n"


def test_no_bootstrap_package_is_installed_in_the_image(built: Path, docker_engine: Any) -> None:
    def packages(image: str) -> str:
        listing = docker_engine.containers.run(
            image, ["dpkg-query", "-W", "-f", "${Package} ${Status}\n"], remove=True, entrypoint=""
        )
        return str(listing.decode())

    assert packages(IMAGE) == packages(PARENT)
    assert "python3-apt" not in packages(IMAGE)
