"""Reading Packer's output into phases, tasks and failures."""

from __future__ import annotations

from pathlib import Path

from orchestrator.packer_output import BuildState, parse, relative_origin, stage_of


def feed(state: BuildState, *raw: str) -> list[str | None]:
    return [state.feed(parse(line)) for line in raw]


def test_lines_lose_their_build_prefix() -> None:
    line = parse("    web.docker.web: TASK [nginx : Install nginx] ***")
    assert (line.kind, line.text) == ("message", "TASK [nginx : Install nginx] ***")
    assert parse("==> web.docker.web: Committing the container").kind == "say"
    tagged = parse("    web.docker.web (docker-tag): Repository: r/web:1")
    assert tagged.text == "Repository: r/web:1"
    # Only Packer's own prefix goes: an "Error: ..." line keeps its word.
    assert (
        parse("Error: Failed preparing provisioner").text == "Error: Failed preparing provisioner"
    )


def test_tasks_phases_and_image() -> None:
    state = BuildState()
    phases = feed(
        state,
        "==> web.docker.web: Starting docker container...",
        "==> web.docker.web: Provisioning with shell script: /tmp/x",
        "    web.docker.web: rolecast: installed for Ansible: python3-apt",
        "==> web.docker.web: Provisioning with Ansible...",
        "    web.docker.web: TASK [Gathering Facts] *****",
        "    web.docker.web: TASK [nginx : Install nginx] *****",
        "    web.docker.web: RUNNING HANDLER [nginx : Restart nginx] ****",
        "==> web.docker.web: Provisioning with shell script: /tmp/y",
        "    web.docker.web: rolecast: stopping the services of the play",
        "    web.docker.web: rolecast: services started during the play: nginx.service"
        " (running, stopped cleanly)",
        "    web.docker.web: rolecast: cleaning up",
        "==> web.docker.web: Committing the container",
        "    web.docker.web: Image ID: sha256:" + "a" * 64,
        "==> web.docker.web: Running post-processor:  (type docker-tag)",
        "    web.docker.web (docker-tag): Repository: localhost:5000/x/web:1",
    )
    assert [p for p in phases if p] == [
        "starting container",
        "preparing",
        "ansible",
        "task",
        "task",
        "task",
        "cleaning up",
        "stopping services",
        "cleaning up",
        "committing",
        "tagging",
    ]
    assert (state.role, state.task) == ("nginx", "Restart nginx")
    assert state.notes == [
        "installed for Ansible: python3-apt",
        "services started during the play: nginx.service (running, stopped cleanly)",
    ]
    assert state.image_id == "sha256:" + "a" * 64
    assert state.tagged == ["localhost:5000/x/web:1"]
    assert state.failure is None


def test_failed_task_is_named_with_ansible_message() -> None:
    state = BuildState()
    feed(
        state,
        "    b.docker.b: TASK [broken : Install a package that does not exist] *",
        '    b.docker.b: fatal: [rolecast-b]: FAILED! => {"changed": false,'
        ' "msg": "No package matching \'nope\' is available"}',
        "Build 'b.docker.b' errored after 3 seconds: Error executing Ansible: exit 2",
    )
    assert state.failure is not None
    assert state.failure.role == "broken"
    assert state.failure.task == "Install a package that does not exist"
    assert state.failure.message == "No package matching 'nope' is available"


def test_command_failure_message_includes_last_stderr_line() -> None:
    state = BuildState()
    feed(
        state,
        "    b.docker.b: TASK [r : Run it] *",
        '    b.docker.b: fatal: [h]: FAILED! => {"msg": "non-zero return code", "rc": 3,'
        ' "stderr": "boom\\nreally boom"}',
    )
    assert state.failure is not None
    assert state.failure.message == "non-zero return code: really boom"


def test_ignored_failure_is_forgotten() -> None:
    state = BuildState()
    feed(
        state,
        '    b.docker.b: fatal: [h]: FAILED! => {"msg": "meh"}',
        "    b.docker.b: ...ignoring",
    )
    assert state.failure is None


def test_commit_error_keeps_dockers_reason() -> None:
    state = BuildState()
    feed(
        state,
        "==> web.docker.web: Error committing container: exit status 1",
        "    web.docker.web: Stderr: Error response from daemon: bad change",
        "Build 'web.docker.web' errored after 1 second: Error committing container",
    )
    assert state.packer_errors[0] == "Error response from daemon: bad change"


def test_ansible_errors_in_both_styles() -> None:
    for line in ("ERROR! the role 'x' was not found", "[ERROR]: the role 'x' was not found"):
        state = BuildState()
        feed(state, f"    b.docker.b: {line}")
        assert state.ansible_error == "the role 'x' was not found"


def test_offline_service_warning_becomes_one_note() -> None:
    state = BuildState()
    feed(
        state,
        "    vm.docker.vm: TASK [vmrole : Start hello] ***",
        "    vm.docker.vm: [WARNING]: Target is a chroot or systemd is offline. This can lead",
        "    vm.docker.vm: TASK [vmrole : Restart hello] ***",
        "    vm.docker.vm: [WARNING]: Target is a chroot or systemd is offline. This can lead",
    )
    assert state.notes == [
        "warning: service start/restart skipped, no init system runs in a build "
        "(first: role vmrole, task 'Start hello'); the image's command starts its services"
    ]


# What `packer build` printed for a real build of tests/data/projects/edge's `broken`
# image (ansible-core 2.19): Rolecast's stage role between the roles, then the failure.
BROKEN_BUILD = [
    "==> broken.docker.broken: Provisioning with Ansible...",
    "    broken.docker.broken: PLAY [rolecast: broken] *********************************",
    "    broken.docker.broken: TASK [Gathering Facts] **********************************",
    "    broken.docker.broken: ok: [rolecast-broken]",
    "    broken.docker.broken: TASK [rolecast_stage : run the handlers of this stage] ****",
    "    broken.docker.broken: TASK [rolecast_stage : cache stage image] *****************",
    "    broken.docker.broken: ok: [rolecast-broken] => {",
    '    broken.docker.broken:     "msg": "sha256:fd103c349f1ca82ef72f9c93f51c49397ffbbf5b"',
    "    broken.docker.broken: }",
    "    broken.docker.broken: TASK [marker : Write the marker] ************************",
    "    broken.docker.broken: changed: [rolecast-broken]",
    "    broken.docker.broken: TASK [rolecast_stage : run the handlers of this stage] ****",
    "    broken.docker.broken: TASK [rolecast_stage : cache stage role marker] ***********",
    "    broken.docker.broken: TASK [broken_task : Fail on purpose] ********************",
    "    broken.docker.broken: [ERROR]: Task failed: Action failed: this role fails on purpose",
    "    broken.docker.broken: Origin: /tmp/pg-edge/roles/broken_task/tasks/main.yml:2:3",
    "    broken.docker.broken:",
    "    broken.docker.broken: 1 ---",
    "    broken.docker.broken: 2 - name: Fail on purpose",
    "    broken.docker.broken:     ^ column 3",
    '    broken.docker.broken: fatal: [rolecast-broken]: FAILED! => {"changed": false, '
    '"msg": "this role fails on purpose"}',
    "    broken.docker.broken: PLAY RECAP *********************************************",
    "Build 'broken.docker.broken' errored after 13 seconds 276 milliseconds: Error executing"
    " Ansible: Non-zero exit status: exit status 2",
]


def test_rolecast_stage_tasks_are_a_saving_phase_never_a_task() -> None:
    state = BuildState()
    seen = []
    for raw in BROKEN_BUILD:
        phase = state.feed(parse(raw))
        if phase is not None:
            seen.append((phase, state.role, state.task))
    assert seen == [
        ("ansible", None, None),
        ("task", None, "Gathering Facts"),
        ("saving stage", "rolecast_stage", "cache stage image"),
        ("task", "marker", "Write the marker"),
        ("saving stage", "rolecast_stage", "cache stage role marker"),
        ("task", "broken_task", "Fail on purpose"),
    ]
    assert stage_of("cache stage role marker") == "role marker"
    assert stage_of("run the handlers of this stage") == ""


def test_failed_task_knows_its_file_and_line() -> None:
    state = BuildState()
    feed(state, *BROKEN_BUILD)
    assert state.failure is not None
    assert state.failure.origin == "/tmp/pg-edge/roles/broken_task/tasks/main.yml:2"
    assert state.failure.message == "this role fails on purpose"
    root = Path("/tmp/pg-edge")
    assert relative_origin(state.failure.origin, root) == "roles/broken_task/tasks/main.yml:2"
    elsewhere = "/usr/share/ansible/roles/x/tasks/main.yml:7"
    assert relative_origin(elsewhere, root) == elsewhere


def test_origin_of_an_earlier_task_is_not_the_failures() -> None:
    state = BuildState()
    feed(
        state,
        "    b.docker.b: TASK [r : Ignored] ***",
        "    b.docker.b: Origin: /p/roles/r/tasks/main.yml:5:3",
        '    b.docker.b: fatal: [h]: FAILED! => {"msg": "non-zero return code", "rc": 1}',
        "    b.docker.b: ...ignoring",
        "    b.docker.b: TASK [r : Next] ***",
        '    b.docker.b: fatal: [h]: UNREACHABLE! => {"msg": "gone"}',
    )
    assert state.failure is not None
    assert (state.failure.task, state.failure.origin) == ("Next", None)


def test_verbose_task_path_and_a_loops_failed_item() -> None:
    state = BuildState()
    feed(
        state,
        "    b.docker.b: TASK [r : Loop fail] ***",
        "    b.docker.b: task path: /p/roles/r/tasks/main.yml:9",
        "    b.docker.b: changed: [h] => (item=0)",
        '    b.docker.b: failed: [h] (item=1) => {"ansible_loop_var": "item", "item": 1, '
        '"msg": "non-zero return code", "rc": 1, "stderr": "exit one"}',
        '    b.docker.b: fatal: [h]: FAILED! => {"msg": "One or more items failed"}',
    )
    assert state.failure is not None
    assert state.failure.message == "non-zero return code: exit one"
    assert state.failure.origin == "/p/roles/r/tasks/main.yml:9"


def test_a_yaml_mistake_keeps_its_origin_for_the_ansible_error() -> None:
    state = BuildState()
    feed(
        state,
        "    b.docker.b: [ERROR]: YAML parsing failed: Colons in unquoted values must be quoted.",
        "    b.docker.b: Origin: /p/roles/r/tasks/main.yml:3:12",
    )
    assert state.ansible_error is not None and state.failure is None
    assert state.origin == "/p/roles/r/tasks/main.yml:3"
