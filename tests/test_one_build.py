"""One image's build through every phase, with the engine and Packer faked: what it runs,
what it reuses, what it records (once), and what it leaves."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.build import build_images, packer, preflight
from orchestrator.build.context import BuildOptions, Context
from orchestrator.build.image import build_image
from orchestrator.build.recovery import candidate_marker, expect_candidate
from orchestrator.errors import BuildFailedError, CommandFailedError
from orchestrator.history import History
from orchestrator.names import (
    candidate_repository,
    container_name,
    project_containers,
    stage_prefix,
)
from orchestrator.project import Project, load_project
from orchestrator.report import LISTS_TASK, Event
from orchestrator.state import LastBuild
from orchestrator.tags import TagRules

from .fakes import FakeEngine

SPEC = """\
version: 1
defaults:
  registry: example.test/team
  tags: [latest]
images:
  app:
    from: example/base:1
    roles: [one, two]
  child:
    from: app
    roles: [three]
"""


def write_project(root: Path) -> Path:
    for role in ("one", "two", "three"):
        tasks = root / "roles" / role / "tasks"
        tasks.mkdir(parents=True)
        (tasks / "main.yml").write_text(f"- name: Write {role}\n  ansible.builtin.debug: {{}}\n")
    (root / "rolecast.yml").write_text(SPEC)
    return root


class FakePacker:
    """Plays Packer for `runner.run`: reads the rendered template and playbook, says what
    Packer says, commits stages and the image into the fake engine, tags as the
    post-processor does, and leaves no container."""

    def __init__(self, engine: FakeEngine, root: Path, fail_role: str | None = None) -> None:
        self.engine = engine
        self.root = root
        self.fail_role = fail_role
        self.sources: list[str] = []
        self.roles: list[list[str]] = []

    def __call__(
        self, argv: list[str], *, on_line: Callable[[str], None], cwd: Path, **_: Any
    ) -> None:
        template = json.loads((cwd / "template.pkr.json").read_text())
        ((name, source),) = template["source"]["docker"].items()
        self.sources.append(source["image"])
        build = template["build"]
        prefix = f"{name}.docker.{name}: "

        def say(text: str) -> None:
            """As Packer prints: its own steps as `==> BUILD: text`, the rest indented."""
            if text.startswith("==> "):
                on_line(f"==> {prefix}{text[4:]}")
            else:
                on_line(f"    {prefix}{text}")

        run = source["run_command"]
        label = run[run.index("--label") + 1]
        container = self.engine.run(source["image"], name="packer", labels=dict([label.split("=")]))
        say("==> Starting docker container...")
        ran: list[str] = []
        if any("ansible" in p for p in build["provisioner"]):
            say("==> Provisioning with Ansible...")
            play = json.loads((cwd / "playbook.yml").read_text().split("\n", 1)[1])
            for task in play[0].get("pre_tasks", []):  # Rolecast's wait for apt's lists
                say(f"TASK [{task['name']}] ***")
            for entry in play[0]["roles"]:
                if entry["role"] == "rolecast_stage":
                    say("TASK [rolecast_stage : run the handlers of this stage] ***")
                    stage = entry["vars"]["rolecast_stage_name"]
                    say(f"TASK [rolecast_stage : cache stage {stage}] ***")
                    self.engine.add_image(entry["vars"]["rolecast_stage_tag"])
                    continue
                ran.append(entry["role"])
                say(f"TASK [{entry['role']} : Write {entry['role']}] ***")
                if entry["role"] == self.fail_role:
                    say(f"Origin: {self.root}/roles/{entry['role']}/tasks/main.yml:1:3")
                    say(f'fatal: [rolecast-{name}]: FAILED! => {{"msg": "boom"}}')
                    container.remove()
                    raise CommandFailedError(argv, 1, ["Build errored"], "packer build")
        self.roles.append(ran)
        say("==> Committing the container")
        post = build["post-processor"][0]["docker-tag"]
        image_id = self.engine.add_image(*[f"{post['repository']}:{t}" for t in post["tags"]])
        say(f"Image ID: {image_id}")
        say("==> Running post-processor: docker-tag")
        for tag in post["tags"]:
            say(f"Repository: {post['repository']}:{tag}")
        container.remove()


@pytest.fixture
def setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, FakeEngine, FakePacker]:
    engine = FakeEngine()
    engine.add_image("example/base:1", cmd=["/bin/bash"])
    fake = FakePacker(engine, tmp_path)
    monkeypatch.setattr(packer, "run", fake)
    return load_project(write_project(tmp_path)), engine, fake


def context(project: Project, engine: FakeEngine, events: list[Event] | None = None) -> Context:
    rules = TagRules(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    sink = events.append if events is not None else (lambda event: None)
    return Context(project, BuildOptions(), engine, sink, rules)


def count_state(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Every read and write of an image's last-build state, by image."""
    seen: dict[str, list[str]] = {"read": [], "write": []}
    read, write = LastBuild.read.__func__, LastBuild.write  # type: ignore[attr-defined]

    def counted_read(cls: type[LastBuild], project: Project, image: Any) -> LastBuild | None:
        seen["read"].append(image.name)
        return read(cls, project, image)  # type: ignore[no-any-return]

    def counted_write(self: LastBuild, project: Project, image: Any) -> None:
        seen["write"].append(image.name)
        write(self, project, image)

    monkeypatch.setattr(LastBuild, "read", classmethod(counted_read))
    monkeypatch.setattr(LastBuild, "write", counted_write)
    return seen


def test_a_new_image_runs_every_stage_and_reads_and_writes_its_state_once(
    setting: tuple[Project, FakeEngine, FakePacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, engine, fake = setting
    seen = count_state(monkeypatch)
    events: list[Event] = []
    ctx = context(project, engine, events)
    result = build_image(ctx, "app", None)
    assert result.result == "built"
    assert result.stages_run == ["image", "role one", "role two", "commit"]
    assert fake.roles == [["one", "two"]]
    assert fake.sources == ["example/base:1"]
    assert seen == {"read": ["app"], "write": ["app"]}
    assert "example.test/team/app:latest" in engine.tags()
    assert engine.containers_by_id == {}
    stages = sorted(t for t in engine.tags() if t.startswith(stage_prefix(project.identity)))
    assert len(stages) == 3  # image, role one, role two: the commit stage is not cached
    (record,) = History(project.root).records(["app"])
    assert (record.result, record.roles_run, record.image_id) == (
        "built",
        ["one", "two"],
        result.image_id,
    )
    phases = [e.phase for e in events]
    assert phases.index("planned") < phases.index("starting") < phases.index("task")
    assert phases[-1] == "done"
    # Rolecast's own stage role is a phase of the build, never a role or a task.
    saved = [e.message for e in events if e.phase == "saving stage"]
    assert saved == ["image", "role one", "role two"]
    tasks = [(e.role, e.task) for e in events if e.phase == "task"]
    # The play first waits for apt's lists (shown, timed as the bootstrap): not a task of
    # the user's, so not among the slowest tasks.
    assert tasks[:2] == [(None, LISTS_TASK), (None, f"{LISTS_TASK}: warning")]
    assert [role for role, _ in tasks[2:]] == ["one", "two"]
    assert [t.role for t in ctx.timings] == ["one", "two"]
    # Where the time went, in the order the build went through it, in report and history.
    assert list(result.phases) == [
        "start",
        "parent",
        "container",
        "ansible start",
        "bootstrap",  # the play's wait for apt's lists, fetched while Ansible started
        "stage commits",
        "role one",
        "role two",
        "commit",
        "tag",
    ]
    assert all(seconds >= 0 for seconds in result.phases.values())
    assert result.as_dict()["phases"] == result.phases
    assert History(project.root).records(["app"])[0].phases == result.phases


def test_nothing_changed_keeps_the_image_and_runs_no_packer(
    setting: tuple[Project, FakeEngine, FakePacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, engine, fake = setting
    first = build_image(context(project, engine), "app", None)
    seen = count_state(monkeypatch)
    again = build_image(context(project, engine), "app", None)
    assert (again.result, again.image_id) == ("fresh", first.image_id)
    assert len(fake.sources) == 1
    assert seen == {"read": ["app"], "write": []}


def test_a_changed_last_role_resumes_from_the_stage_before_it(
    setting: tuple[Project, FakeEngine, FakePacker],
) -> None:
    project, engine, fake = setting
    build_image(context(project, engine), "app", None)
    (project.root / "roles" / "two" / "tasks" / "main.yml").write_text(
        "- ansible.builtin.meta: noop\n"
    )
    result = build_image(context(load_project(project.root), engine), "app", None)
    assert result.stages_reused == ["image", "role one"]
    assert result.stages_run == ["role two", "commit"]
    assert fake.roles[-1] == ["two"]
    assert fake.sources[-1].startswith(stage_prefix(project.identity) + "app:")


def test_a_failed_task_is_named_records_the_failure_and_writes_no_state(
    setting: tuple[Project, FakeEngine, FakePacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, engine, fake = setting
    fake.fail_role = "two"
    seen = count_state(monkeypatch)
    with pytest.raises(BuildFailedError) as info:
        build_image(context(project, engine), "app", None)
    assert str(info.value).startswith(
        "image app: role two, task 'Write two' failed at roles/two/tasks/main.yml:1: boom; log: "
    )
    assert seen["write"] == []
    (record,) = History(project.root).records(["app"])
    assert (record.result, record.roles_run) == ("failed", ["one", "two"])
    assert engine.containers_by_id == {}
    assert "example.test/team/app:latest" not in engine.tags()


def test_a_child_starts_from_the_image_its_parent_built_in_the_same_run(
    setting: tuple[Project, FakeEngine, FakePacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, engine, fake = setting
    monkeypatch.setattr(preflight, "check_tools", lambda: (1, 6, 6))
    report = build_images(
        project, BuildOptions(jobs=2), lambda event: None, ["child"], TagRules(), lambda: engine
    )
    assert [(i.name, i.result) for i in report.images] == [("app", "built"), ("child", "built")]
    assert fake.sources == ["example/base:1", "example.test/team/app:latest"]


def test_two_checkouts_of_one_project_keep_their_stages_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.build.cache import cached_stages, prune

    engine = FakeEngine()
    engine.add_image("example/base:1")
    fake = FakePacker(engine, tmp_path)
    monkeypatch.setattr(packer, "run", fake)
    one = load_project(write_project(tmp_path / "one"))
    two = load_project(write_project(tmp_path / "two"))
    assert one.identity != two.identity
    build_image(context(one, engine), "app", None)
    build_image(context(two, engine), "app", None)
    assert fake.roles == [["one", "two"], ["one", "two"]]  # the second reused nothing
    theirs = {s.reference for s in cached_stages(engine, two)}
    (one.root / "roles" / "two" / "tasks" / "main.yml").write_text("- ansible.builtin.meta: noop\n")
    removed, _ = prune(engine, load_project(one.root))
    assert removed and all(s.reference.startswith(stage_prefix(one.identity)) for s in removed)
    assert theirs <= engine.tags()


def test_apt_volumes_are_labelled_with_their_checkout_and_pruned_when_it_is_gone(
    setting: tuple[Project, FakeEngine, FakePacker], tmp_path: Path
) -> None:
    from orchestrator.build.cache import prune_apt_volumes
    from orchestrator.names import CHECKOUT_LABEL, apt_volumes, checkout_labels

    project, engine, _ = setting
    build_image(context(project, engine), "app", None)
    ours = set(apt_volumes(project.identity, "app"))
    assert ours <= set(engine.volume_store)
    assert {engine.volume_store[n][CHECKOUT_LABEL] for n in ours} == {str(project.root)}
    gone = tmp_path / "gone-checkout"
    other = write_project(tmp_path / "other-checkout")
    engine.create_volume("rolecast-apt-lists-gone-app", checkout_labels(gone))
    engine.add_image(f"{stage_prefix(checkout_labels(gone)['io.rolecast.project'])}app:1")
    engine.create_volume("rolecast-apt-lists-other-app", checkout_labels(other))
    engine.create_volume("someone-elses", {})
    said = prune_apt_volumes(engine, project)
    assert sorted(said) == sorted(
        [f"volume {n}" for n in ours]
        + [f"volume rolecast-apt-lists-gone-app of {gone.resolve()}, which is gone"]
        + [
            f"stage {stage_prefix(checkout_labels(gone)['io.rolecast.project'])}app:1 of "
            f"{gone.resolve()}, which is gone"
        ]
    )
    assert not any(
        t.startswith(stage_prefix(checkout_labels(gone)["io.rolecast.project"]))
        for t in engine.tags()
    )
    assert set(engine.volume_store) == {"rolecast-apt-lists-other-app", "someone-elses"}


def test_a_fresh_run_lists_no_images_and_a_candidate_whose_removal_failed_still_goes(
    setting: tuple[Project, FakeEngine, FakePacker],
) -> None:
    """Listing images walks all of the engine's: a run lists only the project's containers,
    and a gated build's candidate is looked for where its marker says one may be left."""
    project, engine, _ = setting
    app = build_image(context(project, engine), "app", None)
    build_image(context(project, engine), "child", app)
    engine.calls.clear()
    ctx = context(project, engine)
    build_image(ctx, "child", build_image(ctx, "app", None))
    listed = [call for call in engine.calls if call[0] in ("images", "containers")]
    assert listed == [("containers", project_containers(project.identity), "")]
    # A gated build whose candidate's removal failed: its record finished, its marker kept.
    image = project.images["app"]
    left = f"{candidate_repository(project.identity, image.slug)}:b1"
    engine.add_image(left)
    expect_candidate(ctx, image)
    result = build_image(context(project, engine), "app", None)
    assert left not in engine.tags()
    assert f"removed the unchecked candidate {left} of a killed build" in result.notes
    assert not candidate_marker(ctx, image).exists()


def test_a_killed_build_s_candidate_is_removed_by_its_open_record_without_a_marker(
    setting: tuple[Project, FakeEngine, FakePacker],
) -> None:
    project, engine, _ = setting
    build_image(context(project, engine), "app", None)
    ctx = context(project, engine)
    left = f"{candidate_repository(project.identity, project.images['app'].slug)}:b2"
    engine.add_image(left)
    History(project.root).start("app", "f" * 64, [])  # the killed build's record
    result = build_image(ctx, "app", None)
    assert left not in engine.tags()
    assert f"removed the unchecked candidate {left} of a killed build" in result.notes
    assert History(project.root).records(["app"])[1].result == "interrupted"


def test_a_container_left_is_removed_whether_the_run_listed_it_or_its_record_is_open(
    setting: tuple[Project, FakeEngine, FakePacker],
) -> None:
    project, engine, _ = setting
    build_image(context(project, engine), "app", None)
    slug = project.images["app"].slug
    # Its removal failed, its record finished: the run's listing finds it.
    left = engine.run("example/base:1", name=container_name(project.identity, slug, "b1"))
    result = build_image(context(project, engine), "app", None)
    assert left.id not in engine.containers_by_id
    assert any(n.startswith(f"removed container {left.id[:12]}") for n in result.notes)
    # Left by a build killed after the run listed the project's containers.
    ctx = context(project, engine)
    assert ctx.containers_left == []
    killed = engine.run("example/base:1", name=container_name(project.identity, slug, "b2"))
    History(project.root).start("app", "f" * 64, [])
    result = build_image(ctx, "app", None)
    assert killed.id not in engine.containers_by_id
    assert any(n.startswith(f"removed container {killed.id[:12]}") for n in result.notes)
