"""The Packer template and what goes with it, built by pure functions and compared whole."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
import yaml

from orchestrator import provision, render
from orchestrator.names import PACKER_PLUGIN_DEFAULTS, PYTHON_APT_VOLUME
from orchestrator.provision import KEEP_ALIVE
from orchestrator.render import ParentConfig, RenderInput
from orchestrator.spec import ImageConfig


def make_input(**overrides: object) -> RenderInput:
    base = RenderInput(
        name="web",
        parent="rolecast/debian-bookworm:bookworm",
        parent_is_local=True,
        parent_config=ParentConfig(cmd=["/bin/bash"]),
        config=ImageConfig(),
        labels={"org.opencontainers.image.title": "web"},
        repository="localhost:5000/example/web",
        tags=["latest", "1.0"],
        build_id="b123",
        playbook=Path("/p/.rolecast/build/web/playbook.yml"),
        extra_vars_file=Path("/p/.rolecast/build/web/vars.json"),
        connection="mitogen",
        packer_version=(1, 6, 6),
        groups=["webservers"],
        inventory=Path("/p/inventories/staging"),
        roles_paths=[Path("/p/roles")],
        ansible_config=Path("/p/ansible.cfg"),
        mitogen_strategy_dir=Path("/venv/ansible_mitogen/plugins/strategy"),
        tools_dir=Path("/p/.rolecast/build/web/tools"),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_template_for_packer_1_6() -> None:
    data = render.template(make_input())
    assert "packer" not in data  # 1.6 has its plugins built in
    source = data["source"]["docker"]["web"]
    assert source["image"] == "rolecast/debian-bookworm:bookworm"
    assert source["pull"] is False
    assert source["commit"] is True
    assert source["container_dir"] == "/mnt"
    assert source["run_command"] == [
        "-d",
        "-i",
        "-t",
        "--entrypoint=",
        "--sysctl=net.ipv6.conf.lo.disable_ipv6=0",
        "--label",
        "io.rolecast.build=b123",
        "--label",
        "io.rolecast.image=web",
        "--",
        "{{.Image}}",
        "/bin/sh",
        "-c",
        KEEP_ALIVE,
    ]
    assert source["changes"] == [
        'CMD ["/bin/bash"]',
        'LABEL "org.opencontainers.image.title"="web"',
    ]
    build = data["build"]
    assert build["sources"] == ["source.docker.web"]
    kinds = [next(iter(p)) for p in build["provisioner"]]
    # upload of the service manager, bootstrap, the play, clean-up (services stopped first)
    assert kinds == ["file", "shell", "ansible", "shell"]
    assert "rolecast-services stop" in "\n".join(build["provisioner"][3]["shell"]["inline"])
    ansible = build["provisioner"][2]["ansible"]
    assert ansible["playbook_file"] == "/p/.rolecast/build/web/playbook.yml"
    assert ansible["command"] == "ansible-playbook"
    assert ansible["groups"] == ["webservers"]
    assert ansible["host_alias"] == "rolecast-web"
    assert ansible["use_proxy"] is False
    # No `ansible-playbook --version` by Packer before the container starts: the line it
    # would choose for Ansible 2 is given, and the interpreter needs no discovery.
    assert ansible["skip_version_check"] is True
    assert ansible["inventory_file_template"].startswith("{{ .HostAlias }} ansible_host=")
    assert ansible["extra_arguments"] == [
        "--limit",
        "rolecast-web",
        "-i",
        "/p/inventories/staging",
        "-e",
        "@/p/.rolecast/build/web/vars.json",
        "-e",
        "ansible_connection=docker",
        "-e",
        "ansible_host=${build.ID}",
        "-e",
        "ansible_user=root",
        "-e",
        "ansible_python_interpreter=python3",
    ]
    env = dict(e.split("=", 1) for e in ansible["ansible_env_vars"])
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert env["ANSIBLE_STRATEGY_PLUGINS"] == "/venv/ansible_mitogen/plugins/strategy"
    assert env["ANSIBLE_ROLES_PATH"] == "/p/roles"
    assert env["ANSIBLE_CONFIG"] == "/p/ansible.cfg"
    assert build["post-processor"] == [
        {"docker-tag": {"repository": "localhost:5000/example/web", "tags": ["latest", "1.0"]}}
    ]


def test_template_for_packer_1_7_pins_its_plugins() -> None:
    data = render.template(make_input(packer_version=(1, 9, 4)))
    docker, ansible = PACKER_PLUGIN_DEFAULTS["docker"], PACKER_PLUGIN_DEFAULTS["ansible"]
    assert data["packer"] == {
        "required_plugins": {
            "docker": {"version": f"= {docker}", "source": "github.com/hashicorp/docker"},
            "ansible": {"version": f"= {ansible}", "source": "github.com/hashicorp/ansible"},
        }
    }
    assert list(data) == ["packer", "source", "build"]
    pinned = render.template(
        make_input(packer_version=(1, 11, 2), packer_plugins={"docker": "9.8.7"})
    )
    assert pinned["packer"]["required_plugins"]["docker"]["version"] == "= 9.8.7"
    assert pinned["packer"]["required_plugins"]["ansible"]["version"] == f"= {ansible}"


def test_proxy_connection_gets_openssh9_options() -> None:
    data = render.template(make_input(connection="proxy", mitogen_strategy_dir=None))
    ansible = data["build"]["provisioner"][2]["ansible"]
    assert "use_proxy" not in ansible
    env = dict(e.split("=", 1) for e in ansible["ansible_env_vars"])
    assert env["ANSIBLE_SSH_EXTRA_ARGS"] == (
        "-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa"
    )
    assert env["ANSIBLE_SCP_EXTRA_ARGS"] == "-O"
    assert "ansible_connection=docker" not in ansible["extra_arguments"]


def test_docker_connection_uses_community_docker_with_pipelining() -> None:
    data = render.template(make_input(connection="docker", mitogen_strategy_dir=None))
    ansible = data["build"]["provisioner"][2]["ansible"]
    assert "ansible_connection=community.docker.docker" in ansible["extra_arguments"]
    assert "ANSIBLE_PIPELINING=True" in ansible["ansible_env_vars"]


def test_changes_quote_env_and_labels_for_docker_and_hcl() -> None:
    config = ImageConfig.model_validate(
        {
            "env": {"GREETING": 'say "hi" to ${USER} and $HOME \\o/', "SNOW": "☃ ünïcode"},
            "labels": {"note": "${literal}"},
            "user": "app",
            "workdir": "/srv/my app",
            "expose": [8080, "53/udp"],
            "volumes": ["/data"],
            "entrypoint": ["/usr/bin/tini", "--"],
            "cmd": ["python3", "-m", "http.server"],
        }
    )
    changes = render.changes(config, ParentConfig(), dict(config.labels))
    assert changes == [
        'ENTRYPOINT ["/usr/bin/tini", "--"]',
        'CMD ["python3", "-m", "http.server"]',
        'ENV GREETING="say \\"hi\\" to \\${USER} and \\$HOME \\\\o/"',
        'ENV SNOW="☃ ünïcode"',
        "USER app",
        'WORKDIR "/srv/my app"',
        "EXPOSE 8080",
        "EXPOSE 53/udp",
        'VOLUME ["/data"]',
        'LABEL "note"="\\${literal}"',
    ]
    # Packer reads the template as HCL: `${` must reach Docker as written.
    source = render.template(make_input(config=config, labels=dict(config.labels)))
    rendered = source["source"]["docker"]["web"]["changes"]
    assert 'LABEL "note"="\\$${literal}"' in rendered


def test_entrypoint_and_cmd_are_inherited_explicitly() -> None:
    parent = ParentConfig(entrypoint=["/docker-entrypoint.sh"], cmd=["nginx"], user="")
    assert render.changes(ImageConfig(), parent, {})[:2] == [
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        'CMD ["nginx"]',
    ]
    inp = make_input(parent_config=parent)
    run = render.run_command(inp)
    assert "--entrypoint=/bin/sh" in run
    assert run[-3:] == ["{{.Image}}", "-c", KEEP_ALIVE]


def test_a_new_entrypoint_drops_the_inherited_cmd() -> None:
    config = ImageConfig.model_validate({"entrypoint": ["/app"]})
    parent = ParentConfig(cmd=["/bin/bash"])
    assert render.changes(config, parent, {})[:2] == ['ENTRYPOINT ["/app"]', "CMD []"]


def test_non_root_parent_is_built_as_root_and_keeps_its_user() -> None:
    parent = ParentConfig(cmd=["/bin/bash"], user="app")
    inp = make_input(parent_config=parent)
    assert "--user=0" in render.run_command(inp)
    assert "USER app" in render.changes(ImageConfig(), parent, {})
    root_parent = ParentConfig(cmd=["/bin/bash"], user="")
    assert "--user=0" not in render.run_command(make_input(parent_config=root_parent))
    assert not [c for c in render.changes(ImageConfig(), root_parent, {}) if c.startswith("USER")]


def test_stopsignal_is_set_on_the_build_container() -> None:
    config = ImageConfig.model_validate({"stopsignal": "SIGQUIT"})
    assert "--stop-signal=SIGQUIT" in render.run_command(make_input(config=config))


def test_cleanup_script_follows_the_config() -> None:
    default = "\n".join(provision.cleanup_script(ImageConfig()))
    assert "apt-get autoremove" in default
    assert "rm -rf /var/lib/apt/lists/*" in default
    keep = ImageConfig.model_validate({"keep_ansible_deps": True, "cleanup": False})
    kept = "\n".join(provision.cleanup_script(keep))
    assert "autoremove" not in kept
    assert "/var/lib/apt/lists" not in kept
    assert '.ansible"' in kept
    on_volumes = "\n".join(provision.cleanup_script(ImageConfig(), apt_cache=True))
    assert "/var/lib/apt/lists" not in on_volumes and "apt-get clean" not in on_volumes
    assert "rm -rf /tmp/* /var/tmp/*" in on_volumes


def test_apt_cache_volumes_are_the_images_own_in_its_project() -> None:
    run = render.run_command(make_input(apt_cache=True, project_id="0123456789abcdef"))
    assert run[run.index("rolecast-apt-lists-0123456789abcdef-web:/var/lib/apt/lists") - 1] == "-v"
    assert "rolecast-apt-cache-0123456789abcdef-web:/var/cache/apt" in run
    other = render.run_command(make_input(apt_cache=True, project_id="fedcba9876543210"))
    shared = f"{PYTHON_APT_VOLUME}:{provision.PYTHON_APT_HOME}"
    # python3-apt, unpacked once, is the host's: shared by every project's builds
    assert shared in run and shared in other
    assert not set(run) & {a for a in other if "rolecast-apt" in a} - {shared}
    assert not any("rolecast-apt" in a for a in render.run_command(make_input()))


def test_a_stage_commit_sits_between_roles_and_the_commit_role_is_guarded() -> None:
    items: list[render.PlayItem] = [
        render.StageCommit("image", "rolecast-cache/web:aa"),
        ("nginx", {}),
        render.StageCommit("role nginx", "rolecast-cache/web:bb"),
    ]
    play = json.loads(render.generated_playbook("web", "rolecast-web", items).split("\n", 1)[1])
    assert play[0]["roles"] == [
        {
            "role": "rolecast_stage",
            "vars": {
                "rolecast_stage_name": "image",
                "rolecast_stage_tag": "rolecast-cache/web:aa",
                "rolecast_stage_services": True,
            },
        },
        {"role": "nginx"},
        {
            "role": "rolecast_stage",
            "vars": {
                "rolecast_stage_name": "role nginx",
                "rolecast_stage_tag": "rolecast-cache/web:bb",
                "rolecast_stage_services": True,
                "rolecast_stage_resume": False,  # the last: the clean-up stops them anyway
            },
        },
    ]
    tasks = yaml.safe_load(render.STAGE_ROLE_TASKS)
    assert tasks[0]["ansible.builtin.meta"] == "flush_handlers"
    (commit,) = tasks[1:]
    assert commit["when"] == "rolecast_container is defined"  # not in a gate's second run
    assert (
        "lookup('ansible.builtin.pipe', rolecast_stage_command)"
        in commit["ansible.builtin.debug"]["msg"]
    )

    # The services stop before the commit (what they wrote is on disk) and run again
    # after it, in the same command: a failed stop commits nothing.
    def command(**stage_vars: object) -> str:
        """The stage's command as Ansible renders it (its vars refer to each other)."""
        values = {"rolecast_container": "c1", "rolecast_stage_tag": "s:1", **stage_vars}
        environment = jinja2.Environment()
        environment.filters["quote"] = shlex.quote
        for _ in range(3):
            for name, text in commit["vars"].items():
                values[name] = environment.from_string(text).render(values)
        return str(values["rolecast_stage_command"]).strip()

    services = f"c1 {provision.SERVICES_COMMAND}"
    assert command() == "docker commit c1 s:1"
    assert command(rolecast_stage_services=True) == (
        f"docker exec {services} stop >/dev/null && docker commit c1 s:1 && "
        f"docker exec {services} resume"
    )
    assert command(rolecast_stage_services=True, rolecast_stage_resume=False) == (
        f"docker exec {services} stop >/dev/null && docker commit c1 s:1"
    )
    assert commit["vars"]["rolecast_services"].endswith("rolecast-services")
    args = render.ansible_arguments(make_input(stage_cache=True))
    assert "rolecast_container=${build.ID}" in args


@pytest.mark.parametrize(
    "script",
    [
        provision.bootstrap_script(),
        provision.bootstrap_script("run", apt_cache=True),
        provision.bootstrap_script("run", apt_cache=True, lists_wait=True),
        provision.cleanup_script(ImageConfig()),
        provision.cleanup_script(ImageConfig(), apt_cache=True),
        provision.bootstrap_script("skip"),
        provision.cleanup_script(ImageConfig(), services="skip"),
    ],
)
def test_scripts_are_valid_shell(script: list[str]) -> None:
    done = subprocess.run(["sh", "-n"], input="\n".join(script), text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_generated_playbook_applies_roles_in_order_with_their_vars() -> None:
    text = render.generated_playbook(
        "app", "rolecast-app", [("python_runtime", {}), ("app", {"app_port": 9000})]
    )
    assert text.startswith("# Generated by rolecast for image app")
    play = json.loads(text.split("\n", 1)[1])
    assert play == [
        {
            "name": "rolecast: app",
            "hosts": "rolecast-app",
            "gather_facts": True,
            "roles": [{"role": "python_runtime"}, {"role": "app", "vars": {"app_port": 9000}}],
        }
    ]


def test_services_skip_keeps_systemd_offline_and_the_recording_stand_in() -> None:
    items: list[render.PlayItem] = [("app", {}), render.StageCommit("role app", "c:1")]
    skip = json.loads(render.generated_playbook("app", "h", items, "skip").split("\n", 1)[1])
    assert skip[0]["environment"] == {"SYSTEMD_OFFLINE": "1"}
    assert "rolecast_stage_services" not in skip[0]["roles"][1]["vars"]
    run = json.loads(render.generated_playbook("app", "h", items, "run").split("\n", 1)[1])
    assert "environment" not in run[0]
    assert run[0]["roles"][1]["vars"]["rolecast_stage_services"] is True
    skipped = "\n".join(provision.bootstrap_script("skip"))
    assert "policy-rc.d" in skipped and "recorded and skipped" in skipped
    assert provision.TOOLS_DIR not in skipped
    running = "\n".join(provision.bootstrap_script("run"))
    assert "policy-rc.d" not in running  # maintainer scripts start services, as on a VM
    assert f"{provision.TOOLS_DIR}/services.py systemctl" in running
    assert "mkdir -p /run/systemd/system" in running  # Ansible's service manager fact
    cleanup = "\n".join(provision.cleanup_script(ImageConfig(), services="run"))
    assert cleanup.index("rolecast-services stop") < cleanup.index("rolecast-services report")
    assert cleanup.index("rolecast-services report") < cleanup.index(
        f"rm -rf {provision.TOOLS_DIR}"
    )
    skipped_cleanup = "\n".join(provision.cleanup_script(ImageConfig(), services="skip"))
    assert "rolecast-services" not in skipped_cleanup
    skipping = render.template(make_input(services="skip"))["build"]["provisioner"]
    assert [next(iter(p)) for p in skipping] == ["shell", "ansible", "shell"]


def test_services_run_uploads_the_service_manager_before_the_bootstrap() -> None:
    provisioners = render.template(make_input())["build"]["provisioner"]
    assert provisioners[0] == {
        "file": {
            "source": "/p/.rolecast/build/web/tools/",
            "destination": "/usr/local/lib/rolecast-build/",
        }
    }
    assert "shell" in provisioners[1]
    skipped = render.template(make_input(services="skip"))["build"]["provisioner"]
    assert "file" not in skipped[0]
    assert set(provision.service_tools()) == {
        "systemctl3.py",
        "journalctl3.py",
        "services.py",
        "EUPL-LICENSE.md",
    }
    assert all(path.is_file() for path in provision.service_tools().values())


def test_hcl_escape() -> None:
    assert render.hcl_escape("a ${b} %{c} $d") == "a $${b} %%{c} $d"


def test_vault_arguments_pass_paths_only() -> None:
    inp = make_input(vault_arguments=["--vault-password-file=/secrets/vault.txt"])
    args = render.template(inp)["build"]["provisioner"][2]["ansible"]["extra_arguments"]
    assert "--vault-password-file=/secrets/vault.txt" in args


def test_init_services_makes_the_service_manager_the_entrypoint_and_keeps_it() -> None:
    config = ImageConfig.model_validate({"init": "services"})
    parent = ParentConfig(entrypoint=["/docker-entrypoint.sh"], cmd=["nginx"])
    assert render.changes(config, parent, {})[:2] == [
        'ENTRYPOINT ["/usr/local/sbin/rolecast-init"]',
        "CMD []",  # a new entrypoint drops the parent's command, as in a Dockerfile
    ]
    data = render.template(make_input(config=config, services="skip"))
    assert next(iter(data["build"]["provisioner"][0])) == "file"  # the manager is uploaded
    # The build's own container still waits in a shell.
    assert "--entrypoint=/bin/sh" in data["source"]["docker"]["web"]["run_command"]
    kept = "\n".join(provision.cleanup_script(config))
    assert kept.index("cp /usr/local/lib/rolecast-build/systemctl3.py") < kept.index(
        "rm -rf /usr/local/lib/rolecast-build"
    )
    assert '[ "$p" = python3 ] ||' in kept  # python3 stays: the manager runs on it


def test_init_services_refuses_an_entrypoint() -> None:
    with pytest.raises(ValueError, match="init: services makes the service manager the entrypoint"):
        ImageConfig.model_validate({"init": "services", "entrypoint": ["/bin/app"]})


def test_a_stand_in_sets_aside_the_images_own_file_and_the_clean_up_puts_it_back(
    tmp_path: Path,
) -> None:
    own = tmp_path / "systemctl"  # where /usr/sbin is /usr/bin: the image's systemctl
    own.write_text("the image's own\n")
    record = tmp_path / "shims"
    install = "\n".join(["python=/usr/bin/python3", "shims=''", provision.wrapper(str(own), "x")])
    done = subprocess.run(["sh", "-ec", install + f'\necho "$shims" > {record}'], check=False)
    assert done.returncode == 0
    assert own.read_text() == '#!/bin/sh\nexec /usr/bin/python3 x "$@"\n'
    subprocess.run(["sh", "-ec", "\n".join(provision.remove_shims(str(record)))], check=True)
    assert own.read_text() == "the image's own\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shims", "systemctl"]
    # Where nothing was there, nothing is left.
    fresh = tmp_path / "journalctl"
    install = "\n".join(["python=/usr/bin/python3", provision.wrapper(str(fresh), "x")])
    subprocess.run(["sh", "-ec", install], check=True)
    record.write_text(str(fresh))
    subprocess.run(["sh", "-ec", "\n".join(provision.remove_shims(str(record)))], check=True)
    assert not fresh.exists()


def test_extra_vars_come_after_the_specs_and_before_the_connection() -> None:
    extra = ["-e", "@/p/.rolecast/build/web/extra-vars-1.json", "-e", "@/home/me/more.yml"]
    args = render.ansible_arguments(make_input(extra_vars_arguments=extra))
    spec_vars = args.index("@/p/.rolecast/build/web/vars.json")
    assert args[spec_vars + 1 : spec_vars + 5] == extra
    assert args.index("ansible_connection=docker") > spec_vars + 4


def test_the_play_waits_for_the_lists_the_bootstrap_fetches_in_the_background() -> None:
    items: list[render.PlayItem] = [("app", {})]
    waits = json.loads(render.generated_playbook("app", "h", items, "run", True).split("\n", 1)[1])
    assert waits[0]["pre_tasks"] == provision.lists_barrier()
    assert all(task["tags"] == ["always"] for task in waits[0]["pre_tasks"])  # even with -t
    plain = json.loads(render.generated_playbook("app", "h", items).split("\n", 1)[1])
    assert "pre_tasks" not in plain
    background = "\n".join(provision.bootstrap_script("run", apt_cache=True, lists_wait=True))
    # Started after what the bootstrap installs with apt (python3 on a base without it):
    # two apt-get updates at once, one fails on apt's lock.
    assert background.index("apt-get install") < background.index("  lists_in_background\n")
    foreground = "\n".join(provision.bootstrap_script("run", apt_cache=True))
    assert "lists_in_background" not in foreground and "  fresh_lists\n" in foreground
    # the clean-up waits too: no apt-get of the build runs at the commit
    cleanup = "\n".join(provision.cleanup_script(ImageConfig(), apt_cache=True))
    assert f"flock {provision.LISTS_LOCK} true" in cleanup


def test_the_lists_barrier_waits_for_the_background_fetch_and_prints_what_it_said(
    tmp_path: Path,
) -> None:
    """The bootstrap's shell function, run with a fetch that waits on a pipe: the barrier
    (the play's first task) returns only once the fetch has ended, with its output."""
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is needed on the test machine")
    helpers = tmp_path / "helpers"
    pipe = tmp_path / "go"
    os.mkfifo(pipe)
    function = provision._LISTS_IN_BACKGROUND.replace(provision.APT_HELPERS, str(helpers))
    script = f"""set -e
fresh_lists() {{ read line < {pipe}; echo "fetched: $line"; }}
{function}
lists_in_background
echo bootstrap-done
"""
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stdout == "bootstrap-done\n", done.stderr  # it did not wait for the fetch
    barrier = provision.lists_barrier()[0]["ansible.builtin.shell"]
    assert isinstance(barrier, str)
    waiting = subprocess.Popen(
        ["bash", "-c", barrier.replace(provision.APT_HELPERS, str(helpers))],
        stdout=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=0.5)  # still held by the fetch
    pipe.write_text("lists\n")
    out, _ = waiting.communicate(timeout=30)
    assert out == "fetched: lists\n"
