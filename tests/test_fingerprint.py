"""Fingerprints: content, not mtime; ignored files; what changed first, in words."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.fingerprint import Manifest, Stage, first_change, image_manifest, tree_inputs
from orchestrator.project import load_project


def test_tree_inputs_hash_content_and_mode_not_mtime(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "r"
    (role / "tasks").mkdir(parents=True)
    task = role / "tasks" / "main.yml"
    task.write_text("- debug: msg=hi\n")
    for ignored in (".git/HEAD", "molecule/default/x.yml", "tests/test.yml", "README.md"):
        (role / ignored).parent.mkdir(parents=True, exist_ok=True)
        (role / ignored).write_text("ignored\n")
    first = tree_inputs(role, tmp_path)
    assert list(first) == ["roles/r/tasks/main.yml"]
    os.utime(task, (1, 1))
    assert tree_inputs(role, tmp_path) == first
    task.chmod(0o600)
    assert tree_inputs(role, tmp_path) != first


def manifest(*stages: tuple[str, dict[str, str]]) -> Manifest:
    return Manifest(
        [Stage(name, inputs, name + str(sorted(inputs.items()))) for name, inputs in stages]
    )


def test_first_change_in_build_order() -> None:
    old = manifest(
        ("image", {"parent image": "p1", "inventory/hosts": "a"}),
        ("role common", {"roles/common/tasks/main.yml": "c"}),
        ("role nginx", {"roles/nginx/templates/x.j2": "n"}),
    )
    assert first_change(old, old) is None
    template = manifest(
        ("image", {"parent image": "p1", "inventory/hosts": "a"}),
        ("role common", {"roles/common/tasks/main.yml": "c"}),
        ("role nginx", {"roles/nginx/templates/x.j2": "N"}),
    )
    assert first_change(old, template) == "roles/nginx/templates/x.j2 changed"
    parent = manifest(
        ("image", {"parent image": "p2", "inventory/hosts": "b"}),
        *[(s.name, s.inputs) for s in old.stages[1:]],
    )
    assert first_change(old, parent) == "the image it is built from was rebuilt"
    added = manifest(*[(s.name, s.inputs) for s in old.stages], ("role app", {"x": "1"}))
    assert first_change(old, added) == "role app was added to the image"
    assert first_change(added, old) == "role app was removed from the image"
    removed_file = manifest(
        ("image", {"parent image": "p1"}), *[(s.name, s.inputs) for s in old.stages[1:]]
    )
    assert first_change(old, removed_file) == "inventory/hosts was removed"


def test_manifest_round_trips_through_json() -> None:
    old = manifest(("image", {"a": "1"}), ("role r", {"b": "2"}))
    again = Manifest.from_dict(old.as_dict())
    assert again == old
    assert again.fingerprint == old.fingerprint


def test_all_changes_lists_every_change_in_build_order() -> None:
    from orchestrator.fingerprint import all_changes

    old = manifest(
        ("image", {"parent image": "p1", "inventory/hosts": "a"}),
        ("role common", {"roles/common/tasks/main.yml": "c", "-e: colour": "1"}),
        ("role nginx", {"roles/nginx/templates/x.j2": "n"}),
    )
    assert all_changes(old, old) == []
    new = manifest(
        ("image", {"parent image": "p1", "inventory/hosts": "b"}),
        ("role common", {"roles/common/tasks/main.yml": "c", "-e: colour": "2", "-e: x": "1"}),
        ("role app", {"roles/app/tasks/main.yml": "a"}),
    )
    assert all_changes(old, new) == [
        "inventory/hosts changed",
        "-e: colour changed",
        "-e: x was added",
        "role app was added to the image",
        "role nginx was removed from the image",
    ]
    swapped = manifest(
        ("image", old.stages[0].inputs), *[(s.name, s.inputs) for s in reversed(old.stages[1:])]
    )
    assert all_changes(old, swapped) == [
        "role nginx moved to another place in the order",
        "role common moved to another place in the order",
    ]


SHARED_SPEC = """\
version: 1
images:
  one:
    from: example/base:1
    roles: [common, motd, own]
  two:
    from: example/base:1
    roles: [common, motd, other]
"""


def test_images_with_the_same_first_roles_have_the_same_stages_but_for_their_host_name(
    tmp_path: Path,
) -> None:
    """Equal stages are shared between images; a role that writes the build host's name
    (`rolecast-IMAGE`) makes its stage, and those after it, the image's own."""
    tasks = {
        "common": "- ansible.builtin.copy: {content: base, dest: /etc/base}\n",
        "motd": "- ansible.builtin.copy: {content: '{{ inventory_hostname }}', dest: /etc/motd}\n",
        "own": "- ansible.builtin.debug: {msg: own}\n",
        "other": "- ansible.builtin.debug: {msg: other}\n",
    }
    for role, text in tasks.items():
        (tmp_path / "roles" / role / "tasks").mkdir(parents=True)
        (tmp_path / "roles" / role / "tasks" / "main.yml").write_text(text)
    (tmp_path / "rolecast.yml").write_text(SHARED_SPEC)
    project = load_project(tmp_path)
    one, two = (image_manifest(project, project.images[n], "sha256:parent") for n in ("one", "two"))
    names = [s.name for s in one.stages]
    assert names == ["image", "role common", "role motd", "role own", "commit"]
    assert one.stages[0].fingerprint == two.stages[0].fingerprint
    assert one.stages[1].fingerprint == two.stages[1].fingerprint
    assert "host name" in one.stages[2].inputs and "host name" not in one.stages[1].inputs
    assert one.stages[2].fingerprint != two.stages[2].fingerprint
