"""The variable rule: which stages can read which inventory variables."""

from __future__ import annotations

from pathlib import Path

from orchestrator.variables import Definition, Variables, inventory_variables, text_words


def definition(name: str, value: str = "", source: str = "group_vars/all.yml") -> Definition:
    from orchestrator.digests import value_words

    return Definition(source, name, value or name, value_words(value) if value else frozenset())


def test_a_stage_reads_the_names_in_its_files_and_what_they_mention() -> None:
    variables = Variables(
        (
            definition("nginx_workers"),
            definition("greeting", "hello {{ word }}"),
            definition("word"),
            definition("unrelated"),
            definition("ansible_user"),
        ),
        {},
    )
    read = variables.read_by(frozenset({"greeting", "template", "src"}), dynamic=False)
    assert [d.name for d in read] == ["greeting", "word", "ansible_user"]
    everything = variables.read_by(frozenset(), dynamic=True)
    assert len(everything) == 5


def test_dynamic_lookups_and_words_are_found(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yml"
    plain.write_text("- debug: msg={{ nginx_workers }}\n")
    dynamic = tmp_path / "dynamic.yml"
    dynamic.write_text("- debug: msg={{ lookup('vars', 'x_' + name) }}\n")
    words, is_dynamic = text_words([plain])
    assert "nginx_workers" in words and not is_dynamic
    assert text_words([dynamic])[1]
    hostvars = tmp_path / "h.j2"
    hostvars.write_text("{{ hostvars[inventory_hostname]['x'] }}")
    assert text_words([hostvars])[1]


def test_inventory_variables_of_the_build_host(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "web").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (inventory / "hosts").write_text(
        "[web]\nweb1\n[db]\ndb1\n[site:children]\nweb\n[site:vars]\ninline=1\n"
    )
    (inventory / "group_vars" / "all.yml").write_text("common: 1\n")
    (inventory / "group_vars" / "web" / "main.yml").write_text(
        "workers: 4\nsecret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n"
    )
    (inventory / "group_vars" / "db.yml").write_text("db_only: 1\n")
    (inventory / "group_vars" / "vaulted.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n31\n")
    (inventory / "host_vars" / "web1.yml").write_text("host_only: 1\n")
    found = inventory_variables(inventory, tmp_path, None, ("web",))
    names = {(d.source, d.name) for d in found.definitions}
    assert ("inventory/group_vars/all.yml", "common") in names
    assert ("inventory/group_vars/web/main.yml", "workers") in names
    assert ("inventory/group_vars/web/main.yml", "secret") in names
    assert ("inventory (inventory) group site", "inline") in names
    assert not any(name in ("db_only", "host_only") for _, name in names)
    group_names = next(d for d in found.definitions if d.name == "group_names")
    assert group_names.source == "inventory (inventory)"
    assert found.opaque == {}
    as_host = inventory_variables(inventory, tmp_path, "web1", ())
    assert ("inventory/host_vars/web1.yml", "host_only") in {
        (d.source, d.name) for d in as_host.definitions
    }
