"""The light client's reads on the real engine (the local unix socket, or DOCKER_HOST's:
Podman's, which it reads too): the same answers as the SDK's for the same images and
containers, and a no-op's calls without the SDK loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines.docker import DockerEngine
from orchestrator.engines.podman import short_name

from .helpers import remove_images, tag_image, tag_names

pytestmark = pytest.mark.engine

BASE = "rolecast/debian-bookworm:bookworm"


@pytest.fixture
def objects(docker_engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A repository with two tags of the base image, and a stopped container of it with a
    label: (repository, container name)."""
    if not os.environ.get("DOCKER_HOST", "").startswith("unix://"):
        monkeypatch.delenv("DOCKER_HOST", raising=False)  # the local socket
    run = uuid.uuid4().hex[:8]
    repository, name = f"rolecast-test/light-{run}/base", f"rolecast-test-light-{run}"
    tag_image(docker_engine, BASE, f"{repository}:one")
    tag_image(docker_engine, BASE, f"{repository}:two")
    container = docker_engine.containers.create(
        BASE, ["true"], name=name, labels={"io.rolecast.test": run}
    )
    yield repository, name
    container.remove(force=True)
    remove_images(docker_engine, f"{repository}:one", f"{repository}:two", f"{repository}:three")


def test_the_light_reads_answer_as_the_sdk_s(objects: tuple[str, str], docker_engine: Any) -> None:
    repository, name = objects
    light, sdk = DockerEngine(), DockerEngine(light=False)
    assert light._light is not None and sdk._light is None  # each reads its own way
    for reference in (BASE, f"{repository}:one", "rolecast-test/not-there:1"):
        assert light.image(reference) == sdk.image(reference)
    found = light.image(f"{repository}:one")
    assert found is not None
    assert {f"{repository}:one", f"{repository}:two"} <= {short_name(t) for t in found.tags}
    assert light.images(repository) == sdk.images(repository)
    assert len(light.images(repository)) == 1
    label = f"io.rolecast.test={name.rsplit('-', 1)[1]}"
    for query in ({"name_prefix": name}, {"label": label}, {"name_prefix": "rolecast-test-li"}):
        assert light.containers(**query) == sdk.containers(**query)
    # and as the SDK's own container models name them
    listed = docker_engine.containers.list(all=True, filters={"name": name})
    assert light.containers(name_prefix=name) == sdk.containers(name_prefix=name)
    assert [(c.id, c.name) for c in light.containers(name_prefix=name)] == [
        (c.id, c.name) for c in listed
    ]


def test_a_light_tag_is_the_engine_s(objects: tuple[str, str], docker_engine: Any) -> None:
    repository, _ = objects
    DockerEngine().tag(f"{repository}:one", f"{repository}:three")
    assert f"{repository}:three" in tag_names(docker_engine.images.get(BASE))


NO_OP = """
import sys
from orchestrator.engines.docker import DockerEngine
engine = DockerEngine.connect()
assert engine.image(sys.argv[1]) is not None
assert engine.images(sys.argv[1].rsplit(":", 1)[0])
engine.containers(name_prefix=sys.argv[2])
engine.tag(sys.argv[1], sys.argv[1].rsplit(":", 1)[0] + ":three")
engine.version()
print(" ".join(m for m in ("docker", "requests", "urllib3") if m in sys.modules))
"""


def test_a_no_op_s_engine_calls_load_neither_the_sdk_nor_requests(
    objects: tuple[str, str], tmp_path: Path
) -> None:
    repository, name = objects
    done = subprocess.run(
        [sys.executable, "-c", NO_OP, f"{repository}:one", name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == []
