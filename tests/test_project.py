"""Resolving what each image consumes: role dependencies, parents, build order, selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError, UsageError
from orchestrator.project import load_project

from .conftest import ROOT


def spec_error(root: Path, spec: str) -> str:
    """The SpecError text of resolving a project whose rolecast.yml is `spec`."""
    (root / "rolecast.yml").write_text(spec)
    with pytest.raises(SpecError) as info:
        load_project(root)
    return str(info.value)


def test_example_project_resolves_parents_roles_and_order() -> None:
    project = load_project(ROOT)
    assert project.order == ("base", "web@staging", "web@production", "app", "db")
    web = project.images["web@staging"]
    assert (web.parent_kind, web.parent) == ("image", "base")
    # nginx depends on common in its meta/main.yml; Ansible runs dependencies first.
    assert [r.name for r in web.role_closure] == ["common", "nginx"]
    assert [r.name for r in project.images["app"].role_closure] == ["python_runtime", "app"]
    assert project.images["base"].parent_kind == "base"
    assert project.parent_reference(project.images["base"]) == "rolecast/debian-bookworm:bookworm"
    assert project.parent_reference(web) == "localhost:5000/example/base:latest"
    assert web.repository == "localhost:5000/example/web"
    assert web.tags == ("latest-staging",)
    assert web.inventory == ROOT / "inventories" / "staging"
    production = project.images["web@production"]
    assert production.inventory == ROOT / "inventories" / "production"
    assert production.slug == "web--production"
    assert project.images["app"].inventory == ROOT / "inventories" / "staging"


def test_select_adds_the_images_an_image_is_built_from() -> None:
    project = load_project(ROOT)
    assert project.select(["app"]) == ["base", "app"]
    assert project.select([]) == ["base", "web@staging", "web@production", "app", "db"]
    # A spec name means all its variants; a variant can be named alone.
    assert project.select(["web"]) == ["base", "web@staging", "web@production"]
    assert project.select(["web@production"]) == ["base", "web@production"]


def test_select_unknown_image_suggests_a_name() -> None:
    project = load_project(ROOT)
    with pytest.raises(UsageError, match=r"unknown image 'wbe' \(did you mean 'web'\?\)"):
        project.select(["wbe"])


def test_role_dependency_cycle_is_reported(tmp_path: Path) -> None:
    for name, dep in (("one", "two"), ("two", "one")):
        meta = tmp_path / "roles" / name / "meta"
        meta.mkdir(parents=True)
        (meta / "main.yml").write_text(f"dependencies:\n  - role: {dep}\n")
    message = spec_error(
        tmp_path, "version: 1\nimages:\n  x:\n    from: debian:12\n    roles: [one]\n"
    )
    assert message == (
        "rolecast.yml:5:13 images.x.roles[0]: role dependency cycle: one -> two -> one"
    )


def test_meta_file_errors_name_the_meta_file(tmp_path: Path) -> None:
    meta = tmp_path / "roles" / "bad" / "meta"
    meta.mkdir(parents=True)
    (meta / "main.yml").write_text("dependencies: [\n")
    message = spec_error(
        tmp_path, "version: 1\nimages:\n  x:\n    from: debian:12\n    roles: [bad]\n"
    )
    assert message.startswith("roles/bad/meta/main.yml:2:1: invalid YAML:")


def test_image_without_from_needs_a_default_base(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    message = spec_error(tmp_path, "version: 1\nimages:\n  x:\n    vars: {a: 1}\n")
    assert message == (
        "rolecast.yml:4:5 images.x: no 'from:'; name a base image here or set defaults.base"
    )


def test_missing_roles_path_directory(tmp_path: Path) -> None:
    message = spec_error(
        tmp_path, "version: 1\nroles_path: [ansible/roles]\nimages:\n  x: {from: 'debian:12'}\n"
    )
    assert message == ("rolecast.yml:2:14 roles_path[0]: directory ansible/roles does not exist")


def project_with(tmp_path: Path, spec: str) -> Path:
    (tmp_path / "roles" / "r" / "tasks").mkdir(parents=True)
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts").write_text("[web]\nweb1 ansible_host=10.0.0.1\n")
    (tmp_path / "inv2").mkdir()
    (tmp_path / "inv2" / "hosts").write_text("[web]\nweb2\n")
    (tmp_path / "rolecast.yml").write_text(spec)
    return tmp_path


def test_variant_needs_the_parents_variant(tmp_path: Path) -> None:
    project_with(tmp_path, "")
    message = spec_error(
        tmp_path,
        "version: 1\nimages:\n"
        "  a:\n    from: debian:12\n    variants: {s: inv}\n"
        "  b:\n    from: a\n    variants: {s: inv, p: inv2}\n"
        "  c:\n    from: a\n",
    )
    assert message.splitlines() == [
        "rolecast.yml:8:27 images.b.variants.p: 'a' has no variant 'p'; give it the same variants",
        "rolecast.yml:10:11 images.c.from: 'a' has variants (s); give 'c' the same variants",
    ]


def test_variant_parents_pair_by_name(tmp_path: Path) -> None:
    project_with(
        tmp_path,
        "version: 1\nimages:\n"
        "  a:\n    from: debian:12\n    variants: {s: inv, p: inv2}\n"
        "  b:\n    from: a\n    variants: {s: inv, p: inv2}\n"
        "    tags: [v1]\n",
    )
    project = load_project(tmp_path)
    assert project.images["b@p"].parent == "a@p"
    assert project.images["b@p"].tags == ("v1-p",)
    assert project.images["b@s"].inventory == tmp_path.resolve() / "inv"


def test_host_must_be_in_the_inventory(tmp_path: Path) -> None:
    project_with(tmp_path, "")
    message = spec_error(
        tmp_path,
        "version: 1\ninventory: inv\nimages:\n  a:\n    from: debian:12\n    host: web11\n",
    )
    assert message == (
        "rolecast.yml:6:11 images.a.host: host 'web11' is not in inventory inv; "
        "did you mean 'web1'?"
    )


def test_inventory_comes_from_cli_then_spec_then_ansible_cfg(tmp_path: Path) -> None:
    project_with(tmp_path, "version: 1\nimages:\n  a:\n    from: debian:12\n    groups: [web]\n")
    assert load_project(tmp_path).inventory is None
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = ./inv2\n")
    assert load_project(tmp_path).inventory == tmp_path.resolve() / "inv2"
    spec = tmp_path / "rolecast.yml"
    spec.write_text("version: 1\ninventory: inv\nimages:\n  a:\n    from: debian:12\n")
    assert load_project(tmp_path).inventory == tmp_path.resolve() / "inv"
    assert load_project(tmp_path, inventory=tmp_path / "inv2").inventory == (
        tmp_path.resolve() / "inv2"
    )


def test_requirement_roles_are_named_as_ansible_galaxy_names_them(tmp_path: Path) -> None:
    from orchestrator.project import requirement_roles

    path = tmp_path / "requirements.yml"
    path.write_text(
        "roles:\n"
        "  - name: named\n    src: https://example.invalid/x.git\n"
        "  - src: git+file:///srv/repos/from_git.git\n"
        "  - src: file:///tmp/from_tar.tar.gz\n"
        "  - geerlingguy.docker\n"
        "collections:\n  - name: community.general\n"
    )
    assert requirement_roles(path) == {"named", "from_git", "from_tar", "geerlingguy.docker"}
    path.write_text("- src: file:///tmp/old_style.tgz\n")
    assert requirement_roles(path) == {"old_style"}


def test_roles_from_requirements_validate_before_they_are_installed(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "requirements.yml").write_text("roles:\n  - name: later\n    src: x.tar.gz\n")
    (tmp_path / "rolecast.yml").write_text(
        "version: 1\nrequirements: requirements.yml\n"
        "images:\n  a:\n    from: debian:12\n    roles: [later, ns.coll.role]\n"
    )
    project = load_project(tmp_path)
    assert project.roles_paths[-1] == tmp_path.resolve() / ".rolecast" / "galaxy" / "roles"
    assert project.collections_paths[0] == tmp_path.resolve() / ".rolecast/galaxy/collections"
    message = spec_error(
        tmp_path,
        "version: 1\nrequirements: reqs.yml\nimages:\n  a:\n    from: debian:12\n",
    )
    assert message == (
        "rolecast.yml:2:15 requirements: requirements file reqs.yml not found (no such file)"
    )


def test_paths_that_escape_the_project_are_refused_naming_where_they_lead(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    outside = tmp_path / "elsewhere"
    (outside / "roles").mkdir(parents=True)
    (outside / "site.yml").write_text("- hosts: all\n")
    (outside / "hosts").write_text("[web]\n")
    (outside / "requirements.yml").write_text("roles: []\n")
    root.mkdir()
    (root / "linked-hosts").symlink_to(outside / "hosts")  # a symlink out counts as out
    message = spec_error(
        root,
        "version: 1\n"
        "roles_path: [../elsewhere/roles]\n"
        "inventory: linked-hosts\n"
        "requirements: ../elsewhere/requirements.yml\n"
        "images:\n"
        "  x: {from: 'debian:12', playbook: ../elsewhere/site.yml}\n"
        f"  y: {{from: 'debian:12', playbook: {outside / 'site.yml'}}}\n",
    )
    lines = message.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("rolecast.yml:2:14 roles_path[0]: roles_path ../elsewhere/roles ")
    assert f"resolves to {outside / 'roles'}, outside the project directory {root}" in lines[0]
    assert any(
        line.startswith("rolecast.yml:3:12 inventory: inventory linked-hosts resolves to ")
        and line.endswith("(or give an inventory elsewhere with -i)")
        for line in lines
    )
    assert any(line.startswith("rolecast.yml:4:15 requirements: ") for line in lines)
    assert any(line.startswith("rolecast.yml:6:") and "images.x.playbook" in line for line in lines)
    assert any(line.startswith("rolecast.yml:7:") and "images.y.playbook" in line for line in lines)


def test_a_role_that_is_a_symlink_out_of_the_project_is_followed(tmp_path: Path) -> None:
    """A shared checkout of roles, linked into roles/: allowed, as Ansible allows it."""
    root = tmp_path / "project"
    shared = tmp_path / "shared" / "common"
    (shared / "tasks").mkdir(parents=True)
    (shared / "tasks" / "main.yml").write_text("- ansible.builtin.ping:\n")
    (root / "roles").mkdir(parents=True)
    (root / "roles" / "common").symlink_to(shared)
    (root / "rolecast.yml").write_text(
        "version: 1\nimages:\n  x: {from: 'debian:12', roles: [common]}\n"
    )
    project = load_project(root)
    assert [r.name for r in project.images["x"].role_closure] == ["common"]


BROKEN_INVENTORIES = {
    "bad-yaml": "tests/data/inventories/bad-yaml/inventory/hosts.yml:6:13: ",
    "bad-ini": "tests/data/inventories/bad-ini/inventory/hosts:3: ",
    "cfg-missing": "tests/data/inventories/cfg-missing/ansible.cfg:3 inventory: ",
}


@pytest.mark.parametrize("name", sorted(BROKEN_INVENTORIES))
def test_validate_names_a_broken_inventory_with_ansibles_message(cli: Any, name: str) -> None:
    result = cli("-C", f"tests/data/inventories/{name}", "validate")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(BROKEN_INVENTORIES[name])
    if name == "cfg-missing":
        assert "./inventories/staging not found" in line
        assert "Ansible would be unable to parse it as an inventory source" in line
    else:
        assert "Ansible cannot parse this inventory" in line
        spec = f"tests/data/inventories/{name}/rolecast.yml"
        assert line.endswith(f"(inventory set at {spec}:2:12 inventory)")
    assert (
        "Expected key=value host variable assignment, got: ansible_port" in line
        or name != "bad-ini"
    )


def test_a_broken_inventory_fails_validate_even_when_no_image_names_a_group(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    (tmp_path / "hosts").write_text("[web\nweb1\n")
    spec = "version: 1\ninventory: hosts\nimages:\n  a:\n    from: debian:12\n"
    message = spec_error(tmp_path, spec)
    assert message.startswith(
        "hosts:1: Ansible cannot parse this inventory (ini plugin): "
        "section header '[web' has no closing ']'"
    )
    assert message.endswith("(inventory set at rolecast.yml:2:12 inventory)")


def test_validate_names_a_broken_vars_file_of_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "roles").mkdir()
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "web").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "hosts").write_text("[web]\nweb1\n")
    (inventory / "group_vars" / "web" / "ports.yml").write_text("web_port: [8080\n")
    (inventory / "host_vars" / "web1.yml").write_text("- a list\n")
    (inventory / "group_vars" / "all.yml").write_text("secret: !vault |\n  $ANSIBLE_VAULT;1.1\n")
    (inventory / "group_vars" / "notes.md").write_text("not: [yaml\n")  # Ansible skips it
    spec = "version: 1\ninventory: inventory\nimages:\n  a:\n    from: debian:12\n"
    assert sorted(spec_error(tmp_path, spec).splitlines()) == [
        "inventory/group_vars/web/ports.yml:2:1: invalid YAML in inventory variables: "
        "expected ',' or ']', but got '<stream end>'",
        "inventory/host_vars/web1.yml:1:1: inventory variables must be a mapping of names to "
        "values, not a list",
    ]


def test_a_default_two_images_inherit_is_named_once(tmp_path: Path) -> None:
    (tmp_path / "roles" / "web" / "tasks").mkdir(parents=True)
    spec = (
        "version: 1\ndefaults:\n  base: debian-bookwrm\nbases:\n  debian-bookworm:\n"
        "    suite: bookworm\nimages:\n  a:\n    roles: [web]\n  b:\n    roles: [web]\n"
    )
    message = spec_error(tmp_path, spec)
    assert message.splitlines() == [
        "rolecast.yml:3:9 defaults.base: 'debian-bookwrm' is not an image or base of this "
        "file; did you mean 'debian-bookworm'? (write debian-bookwrm:TAG to use a registry "
        "image)"
    ]
