"""Reading Packer's output into phases, tasks and failures."""

from __future__ import annotations

from orchestrator.packer_output import BuildState, parse


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
