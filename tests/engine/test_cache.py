"""The stage cache, the variable rule and fleet builds, on real builds.

What ran is read from the build history (stages run and reused, and the roles whose
tasks appeared in Ansible's output), never from timing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DATA
from .helpers import build_json, copy_project, remove_images, rolecast, run_in, tag_image, tag_names

pytestmark = pytest.mark.engine

LAYERS = DATA / "projects" / "layers"
BASE_TAG = "rolecast-test/layers-base:1"
DEBIAN = "rolecast/debian-bookworm:bookworm"


def history(project: Path, image: str) -> list[dict[str, Any]]:
    done = rolecast("history", "--json", image, cwd=project)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def plan(project: Path, *images: str) -> dict[str, dict[str, Any]]:
    done = rolecast("plan", "--json", *images, cwd=project)
    assert done.returncode == 0, done.stderr
    return {p["name"]: p for p in json.loads(done.stdout)}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def layers(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The layers project, its base tagged from the Debian base, `four` and `other` built
    together with two jobs."""
    import docker.errors

    try:
        tag_image(docker_engine, DEBIAN, BASE_TAG)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{DEBIAN} is missing: run scripts/setup.sh", pytrace=False)
    project = copy_project(LAYERS, tmp_path_factory.mktemp("layers") / "layers")
    # ansible.cfg is an input of every stage: a token of this run's keeps stages of
    # earlier runs (left in the engine) from being reused.
    (project / "ansible.cfg").write_text(f"# run {uuid.uuid4().hex}\n[defaults]\n")
    # --no-cache: the engine may hold these stages from an earlier run.
    done, data = build_json("--plain", "--no-cache", "-j", "2", "four", "other", cwd=project)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [i["result"] for i in data["images"]] == ["built", "built"]
    yield project
    remove_images(
        docker_engine,
        *[f"rolecast-test/layers/{n}:test" for n in ("four", "twin", "other", "child", "flat")],
    )
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=project).stdout)
    remove_images(docker_engine, *[s["reference"] for s in stages])
    tag_image(docker_engine, DEBIAN, BASE_TAG)


def test_independent_images_build_concurrently(layers: Path) -> None:
    (four,) = history(layers, "four")
    (other,) = history(layers, "other")
    assert four["result"] == other["result"] == "built"
    # Their build intervals overlap: each started before the other finished.
    assert four["started"] < other["finished"] and other["started"] < four["finished"]
    assert four["stages_run"] == ["image", "role first", "role second"] + [
        "role third",
        "role fourth",
        "commit",
    ]
    assert four["roles_run"] == ["first", "second", "third", "fourth"]


def test_template_change_in_the_last_role_runs_only_the_last_stage(
    layers: Path, docker_engine: Any
) -> None:
    template = layers / "roles" / "fourth" / "templates" / "fourth.conf.j2"
    edit(template, "version 1", "version 2")
    stale = plan(layers, "four")["four"]
    assert stale["status"] == "stale"
    assert stale["reason"] == "roles/fourth/templates/fourth.conf.j2 changed"
    assert stale["first_stage"] == "role fourth"

    done, data = build_json("--plain", "four", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "four")[0]
    assert record["result"] == "built"
    assert record["stages_reused"] == ["image", "role first", "role second", "role third"]
    assert record["stages_run"] == ["role fourth", "commit"]
    assert record["roles_run"] == ["fourth"]
    image = "rolecast-test/layers/four:test"
    assert run_in(docker_engine, image, "cat", "/etc/layers/fourth") == "fourth, version 2\n"
    # The reused stages are in the image as the first build made them.
    assert run_in(docker_engine, image, "cat", "/etc/layers/third") == "third one\n"
    assert run_in(docker_engine, image, "cat", "/etc/layers/second") == "second, hello world\n"
    labels = docker_engine.images.get(image).labels
    assert labels["io.rolecast.fingerprint"] == plan(layers, "four")["four"]["fingerprint"]
    # Nothing of the build is left: no resume records, no apt lists set aside.
    listing = docker_engine.containers.run(
        image, ["ls", "-A", "/var/lib", "/mnt"], remove=True, entrypoint=""
    ).decode()
    assert "rolecast-build" not in listing and "rolecast-apt-lists" not in listing


def test_an_image_with_the_same_first_roles_starts_from_the_others_stage(
    layers: Path, docker_engine: Any
) -> None:
    """Stages are the project's, by fingerprint: `twin` has `four`'s parent, groups and
    first two roles, so it runs only its own role."""
    done, _ = build_json("--plain", "four", cwd=layers)  # whatever earlier tests changed
    assert done.returncode == 0, done.stderr[-3000:]
    done, _ = build_json("--plain", "twin", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "twin")[0]
    assert record["result"] == "built"
    assert record["stages_reused"] == ["image", "role first", "role second"]
    assert record["stages_run"] == ["role fourth", "commit"]
    assert record["roles_run"] == ["fourth"]
    image = "rolecast-test/layers/twin:test"
    assert run_in(docker_engine, image, "cat", "/etc/layers/second") == "second, hello world\n"
    # One stage image, two names: four's, and twin's since; twin's image is built on it.
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    second = {s["image"]: s["image_id"] for s in stages if s["stage"] == "role second"}
    assert second["twin"] == second["four"]
    shared = docker_engine.images.get(second["twin"]).attrs["RootFS"]["Layers"]
    layers_of_twin = docker_engine.images.get(image).attrs["RootFS"]["Layers"]
    assert layers_of_twin[: len(shared)] == shared


def test_group_var_rebuilds_only_the_roles_that_read_it(layers: Path, docker_engine: Any) -> None:
    """The rule: a role reads a variable whose name is a word in its files, or in the
    definition of a variable it reads."""
    group_vars = layers / "inventory" / "group_vars"
    edit(group_vars / "layered.yml", "nobody_reads_this: 1", "nobody_reads_this: 2")
    assert plan(layers, "four")["four"]["status"] == "fresh"

    edit(group_vars / "layered.yml", "third_value: one", "third_value: two")
    stale = plan(layers, "four")["four"]
    assert stale["reason"] == "inventory/group_vars/layered.yml: third_value changed"
    assert stale["first_stage"] == "role third"
    done, _ = build_json("--plain", "four", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "four")[0]
    assert record["stages_run"] == ["role third", "role fourth", "commit"]
    assert record["roles_run"] == ["third", "fourth"]
    assert run_in(docker_engine, "rolecast-test/layers/four:test", "cat", "/etc/layers/third") == (
        "third two\n"
    )

    # `second` reads first_greeting, whose value mentions greeting_word.
    edit(group_vars / "all.yml", "greeting_word: world", "greeting_word: layers")
    plans = plan(layers, "four", "other")
    assert plans["four"]["reason"] == "inventory/group_vars/all.yml: greeting_word changed"
    assert plans["four"]["first_stage"] == "role second"
    assert plans["other"]["status"] == "fresh"  # its one role reads neither
    edit(group_vars / "all.yml", "greeting_word: layers", "greeting_word: world")
    assert plan(layers, "four")["four"]["status"] == "fresh"


def test_config_change_commits_again_without_running_a_role(
    layers: Path, docker_engine: Any
) -> None:
    edit(
        layers / "rolecast.yml",
        "cmd: [/bin/cat, /etc/layers/fourth]",
        "cmd: [/bin/cat, /etc/layers/first]",
    )
    stale = plan(layers, "four")["four"]
    assert (stale["reason"], stale["first_stage"]) == ("config changed", "commit")
    done, _ = build_json("--plain", "four", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "four")[0]
    assert (record["stages_run"], record["roles_run"]) == (["commit"], [])
    image = docker_engine.images.get("rolecast-test/layers/four:test")
    assert image.attrs["Config"]["Cmd"] == ["/bin/cat", "/etc/layers/first"]
    output = docker_engine.containers.run("rolecast-test/layers/four:test", remove=True)
    assert output.decode() == "first\n"


def test_a_failed_stage_is_not_reused(layers: Path) -> None:
    edit(layers / "inventory" / "group_vars" / "layered.yml", "third_value: two", "third_value: 3")
    failed = rolecast("build", "--plain", "four", cwd=layers, env={"LAYERS_FAIL_THIRD": "1"})
    assert failed.returncode == 1
    assert "third failed on purpose" in failed.stderr
    record = history(layers, "four")[0]
    assert record["result"] == "failed"
    cached = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    current = {c["stage"] for c in cached if c["image"] == "four" and c["current"]}
    assert current == {"image", "role first", "role second"}

    # Same inputs, the cause gone: the failed stage runs again, it is not served as done.
    done, _ = build_json("--plain", "four", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "four")[0]
    assert record["stages_reused"] == ["image", "role first", "role second"]
    assert record["stages_run"] == ["role third", "role fourth", "commit"]
    assert record["roles_run"] == ["third", "fourth"]


def test_a_failing_image_skips_only_its_dependents(layers: Path) -> None:
    done, data = build_json(
        "--plain",
        "-j",
        "2",
        "--keep-going",
        "--force",
        "other",
        "failing-child",
        "other",
        cwd=layers,
    )
    assert done.returncode == 1
    results = {i["name"]: i for i in data["images"]}
    assert results["failing"]["result"] == "failed"
    assert results["failing-child"]["result"] == "skipped"
    assert results["failing-child"]["error"] == "failing failed"
    assert results["other"]["result"] == "built"
    assert "image failing: role broken, task 'Fail always' failed" in done.stderr


def test_layering_single_caches_no_stage(layers: Path, docker_engine: Any) -> None:
    done, _ = build_json("--plain", "flat", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    record = history(layers, "flat")[0]
    assert record["stages_run"] == ["image", "role first", "role second", "commit"]
    cached = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    assert [c for c in cached if c["image"] == "flat"] == []
    assert run_in(docker_engine, "rolecast-test/layers/flat:test", "cat", "/etc/layers/second") == (
        "second, hello world\n"
    )


def test_a_rebuild_leaves_no_dangling_image(layers: Path, docker_engine: Any) -> None:
    def dangling() -> set[str]:
        return {i.id for i in docker_engine.images.list(filters={"dangling": True})}

    before = dangling()
    old = docker_engine.images.get("rolecast-test/layers/other:test").id
    done, _ = build_json("--plain", "--no-cache", "other", cwd=layers)
    assert done.returncode == 0, done.stderr[-3000:]
    assert docker_engine.images.get("rolecast-test/layers/other:test").id != old
    # The replaced image and the replaced stage images are gone, not left untagged.
    assert dangling() - before == set()
    assert old not in {i.id for i in docker_engine.images.list(all=True)}


def test_a_rebuilt_base_makes_every_child_stale(layers: Path, docker_engine: Any) -> None:
    before = plan(layers, "four", "child", "other")
    assert before["four"]["status"] == "fresh"
    container = docker_engine.containers.create(DEBIAN, ["true"], entrypoint="")
    try:
        rebuilt = container.commit("rolecast-test/layers-base", "1", changes=["LABEL rebuilt=yes"])
    finally:
        container.remove(force=True)
    try:
        after = plan(layers, "four", "child", "other")
        assert after["four"]["status"] == after["other"]["status"] == "stale"
        assert after["four"]["reason"] == "base image layers-base was rebuilt"
        assert after["four"]["first_stage"] == "image"
        assert after["child"]["status"] in ("stale", "missing")
    finally:
        tag_image(docker_engine, DEBIAN, BASE_TAG)
        docker_engine.images.remove(rebuilt.id)
    assert plan(layers, "four")["four"]["status"] == "fresh"


def test_a_fresh_image_gets_the_version_tags_of_this_build(
    layers: Path, docker_engine: Any
) -> None:
    fingerprint = plan(layers, "other")["other"]["fingerprint"]
    done, data = build_json(
        "--plain",
        "--version",
        "1.4.2",
        "--tag",
        "{{ version }}",
        "--tag",
        "fp-{{ fingerprint }}",
        "--tag",
        "latest",
        "other",
        cwd=layers,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (other,) = data["images"]
    assert other["result"] == "fresh"
    repo = "rolecast-test/layers/other"
    wanted = ["test", "1.4.2", "1.4", "1", f"fp-{fingerprint[:12]}", "latest"]
    assert other["tags"] == [f"{repo}:{t}" for t in wanted]
    image = docker_engine.images.get(f"{repo}:1")
    assert tag_names(image) >= set(other["tags"])
    done, data = build_json(
        "--plain",
        "--version",
        "1.5.0-rc.1",
        "--tag",
        "{{ version }}",
        "--tag",
        "latest",
        "other",
        cwd=layers,
    )
    assert data["images"][0]["tags"] == [f"{repo}:test", f"{repo}:1.5.0-rc.1"]
    remove_images(docker_engine, *[f"{repo}:{t}" for t in [*wanted[1:], "1.5.0-rc.1"]])


def test_cache_prune_keeps_only_current_stages(layers: Path, docker_engine: Any) -> None:
    stages = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    old = [s for s in stages if s["image"] == "four" and not s["current"]]
    assert old, "the earlier tests left stages of older fingerprints"
    done = rolecast("cache", "prune", "--keep", "1", cwd=layers)
    assert done.returncode == 0, done.stderr
    after = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    assert len([s for s in after if s["image"] == "four" and not s["current"]]) == 1
    done = rolecast("cache", "prune", cwd=layers)
    after = json.loads(rolecast("cache", "ls", "--json", cwd=layers).stdout)
    assert all(s["current"] for s in after)
    current = {s["reference"] for s in stages if s["current"]}
    assert current <= {s["reference"] for s in after}
    assert plan(layers, "four")["four"]["status"] == "fresh"
