"""The README's blocks marked `<!-- engine -->`: run with a live engine and packer, in a fresh
copy of the example project each, whose images get a registry of their own (so no tag of the
demo's images moves). Tags the blocks made are removed afterwards, tags they moved put back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..readme_blocks import Block, readme_blocks, run_console
from .helpers import tag_names

pytestmark = pytest.mark.engine

ENGINE = [b for b in readme_blocks() if b.kind == "console" and "engine" in b.marks]
REGISTRY = f"localhost:5000/rolecast-readme-{uuid.uuid4().hex[:8]}"
# Repositories the blocks' projects tag: the example's under REGISTRY, and ~/src/ops-ansible's.
OURS = (f"{REGISTRY}/", "ops-ansible:")


def _tags(client: Any) -> dict[str, str]:
    return {tag: image.id for image in client.images.list() for tag in tag_names(image)}


@pytest.fixture
def tags_put_back(docker_engine: Any) -> Iterator[None]:
    from docker.errors import APIError

    before = _tags(docker_engine)
    yield
    made = {t: i for t, i in _tags(docker_engine).items() if t.startswith(OURS)}
    for tag, image_id in made.items():
        if before.get(tag) == image_id:
            continue
        if tag in before:
            repository, _, name = tag.rpartition(":")
            docker_engine.images.get(before[tag]).tag(repository, name)
        else:
            docker_engine.images.remove(tag)
    for image_id in set(made.values()) - set(before.values()):
        try:
            docker_engine.images.remove(image_id)
        except APIError:
            pass  # gone with its last tag, or a child image uses it


def test_there_are_engine_blocks() -> None:
    assert ENGINE


@pytest.mark.parametrize("block", ENGINE, ids=[b.where for b in ENGINE])
def test_readme_engine_block(block: Block, tmp_path: Path, tags_put_back: None) -> None:
    run_console(block, tmp_path, timeout=1800, registry=REGISTRY)
