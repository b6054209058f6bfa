"""The code blocks of README.md, and how each is run (the convention is in README, Contributing).

A block is what follows its markers, the HTML comments on the lines right above it:
`<!-- not-run: REASON -->`, `<!-- engine -->`, `<!-- setup: NAME -->`,
`<!-- output-not-checked: REASON -->`."""

from __future__ import annotations

import doctest
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.starter import write_starter

from .conftest import ROOT

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MARKERS = {"not-run", "engine", "setup", "output-not-checked"}
CONSOLE = {"", "console", "sh", "shell", "bash"}
MARKER = re.compile(r"<!--\s*([a-z-]+)\s*(?::\s*(.*?))?\s*-->", re.S)
NO_ENGINE = "unix:///nonexistent/rolecast-readme-needs-the-engine-marker.sock"
END = "\n@@readme-command {} ended: {}@@\n"


@dataclass(frozen=True)
class Block:
    line: int  # the fence's line in README.md, from 1
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"

    @property
    def commands(self) -> list[tuple[str, list[str]]]:
        """A console block as (command, the output shown for it) pairs."""
        pairs: list[tuple[str, list[str]]] = []
        lines = iter(self.text.splitlines())
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    command += "\n" + next(lines, "")
                pairs.append((command, []))
            elif pairs:
                pairs[-1][1].append(line)
        return pairs

    @property
    def kind(self) -> str:
        """How the block is run: not-run, text, console, yaml or json (else unknown)."""
        if "not-run" in self.marks:
            return "not-run"
        if self.lang in CONSOLE and any(line.startswith("$ ") for line in self.text.splitlines()):
            return "console"
        if self.lang in ("text", "yaml", "json"):
            return self.lang
        return "unknown"


def readme_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, with the markers right above it."""
    tokens = MarkdownIt().parse(README.read_text(encoding="utf-8") if text is None else text)
    blocks: list[Block] = []
    for index, token in enumerate(tokens):
        if token.type != "fence" or token.map is None:
            continue
        marks: dict[str, str] = {}
        before = index - 1
        while before >= 0 and tokens[before].type == "html_block":
            for key, value in MARKER.findall(tokens[before].content):
                marks[key] = value.strip()
            before -= 1
        lang = token.info.split()[0] if token.info.strip() else ""
        blocks.append(Block(token.map[0] + 1, lang, token.content, marks))
    return blocks


def problems(block: Block) -> list[str]:
    """What is wrong with a block's markers and kind, before anything runs."""
    found = [f"{block.where}: unknown marker '{key}'" for key in block.marks if key not in MARKERS]
    if "not-run" in block.marks and not block.marks["not-run"]:
        found.append(f"{block.where}: `not-run` needs a reason: <!-- not-run: needs a registry -->")
    if "setup" in block.marks and block.marks["setup"] not in SETUPS:
        found.append(f"{block.where}: unknown setup '{block.marks['setup']}' (see SETUPS)")
    if block.kind == "unknown":
        found.append(
            f"{block.where}: a ```{block.lang} block that no test runs: write commands as "
            "`$ command` lines, label prose ```text, or mark it <!-- not-run: REASON -->"
        )
    console_only = {"engine", "setup", "output-not-checked"} & set(block.marks)
    if console_only and block.kind != "console":
        found.append(f"{block.where}: {sorted(console_only)} only apply to ```console blocks")
    if block.kind == "text" and any(line.startswith("$ ") for line in block.text.splitlines()):
        found.append(f"{block.where}: commands in a ```text block; make it ```console")
    return found


# Setups: what a block needs besides a fresh copy of the example project. Each gets the
# copy and the test's HOME.


def _broken_inventories(project: Path, home: Path) -> None:
    """An unparseable host line, and an ansible.cfg inventory that is not there (used by the
    images with no inventory of their own once the spec names none)."""
    hosts = project / "inventories" / "staging" / "hosts"
    lines = hosts.read_text().splitlines()
    lines[2] += " ansible_port"
    hosts.write_text("\n".join(lines) + "\n")
    cfg = project / "ansible.cfg"
    cfg.write_text(cfg.read_text().replace("./inventories/staging", "./inventories/qa"))
    _edit_spec(project, "inventory: inventories/staging\n", "")


def _typos(project: Path, home: Path) -> None:
    _edit_spec(project, "roles: [nginx]", "roles: [ngnix]")
    _edit_spec(project, "groups: [appservers]", "groups: [appserver]")


def _ops_ansible(project: Path, home: Path) -> None:
    """An Ansible repository with no rolecast.yml yet, at ~/src/ops-ansible."""
    repo = home / "src" / "ops-ansible"
    for role in ("common", "nginx"):
        shutil.copytree(project / "roles" / role, repo / "roles" / role)
    for name in ("playbooks", "inventories"):
        shutil.copytree(project / name, repo / name)
    shutil.copy2(project / "ansible.cfg", repo / "ansible.cfg")


def _ops_ansible_with_spec(project: Path, home: Path) -> None:
    _ops_ansible(project, home)
    write_starter(home / "src" / "ops-ansible", None, force=False)


def _edit_spec(project: Path, old: str, new: str) -> None:
    spec = project / "rolecast.yml"
    text = spec.read_text()
    assert old in text, f"setup: {old!r} is no longer in rolecast.yml"
    spec.write_text(text.replace(old, new, 1))


SETUPS: dict[str, Callable[[Path, Path], None]] = {
    "broken-inventories": _broken_inventories,
    "typos": _typos,
    "ops-ansible": _ops_ansible,
    "ops-ansible-with-spec": _ops_ansible_with_spec,
}


def example_copy(dest: Path) -> Path:
    """A copy of the example project, as a user's checkout has it."""
    dest.mkdir(parents=True)
    for name in ("roles", "playbooks", "inventories"):
        shutil.copytree(ROOT / name, dest / name)
    for name in ("rolecast.yml", "ansible.cfg"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def script(block: Block) -> str:
    """One bash script for the block, with a marker after each command's output; `$?` is kept
    from command to command, so `$ echo $?` shows the status of the command before it."""
    lines = ["exec 2>&1"]
    for number, (command, _) in enumerate(block.commands):
        end = END.format(number, "%d").replace("\n", "\\n")
        lines += [command, "__rc=$?", f"printf '{end}' \"$__rc\"", "(exit $__rc)"]
    return "\n".join(lines) + "\n"


def run_console(block: Block, tmp: Path, timeout: float, registry: str | None = None) -> None:
    """Run a console block in a fresh copy of the example project and check it: every
    command succeeds (unless the next one is `echo $?`, which then shows its status), and
    the output shown matches (`…` stands for any text; spacing is not compared).

    With no `registry` (the fast tests) no engine answers, so a block that needs one fails
    instead of building; with one, the images get that registry, not the demo's."""
    project = example_copy(tmp / "project")
    home = tmp / "home"
    home.mkdir()
    if registry:
        _edit_spec(project, "registry: localhost:5000/example", f"registry: {registry}")
    if "setup" in block.marks:
        SETUPS[block.marks["setup"]](project, home)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env |= {"HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    if not registry:
        env["DOCKER_HOST"] = NO_ENGINE
    done = subprocess.run(
        ["bash", "-c", script(block)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    check_output(block, done.stdout)


def check_output(block: Block, output: str) -> None:
    commands = block.commands
    pieces = list(_split(output, len(commands)))
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    for number, ((command, shown), (got, status)) in enumerate(zip(commands, pieces, strict=True)):
        following = commands[number + 1][0] if number + 1 < len(commands) else ""
        if status != 0 and following.strip() != "echo $?":
            raise AssertionError(f"{block.where}: `{command}` exited {status}:\n{got}")
        want = "\n".join(shown).replace("…", "...").strip()
        if want and "output-not-checked" not in block.marks:
            if not checker.check_output(want + "\n", got.strip() + "\n", flags):
                raise AssertionError(
                    f"{block.where}: the output of `{command}` is not what the README shows;\n"
                    f"README:\n{want}\n\ngot:\n{got.strip()}"
                )


def _split(output: str, count: int) -> Iterator[tuple[str, int]]:
    """The output of each command, and its exit status."""
    rest = output
    for number in range(count):
        match = re.search(END.format(number, r"(\d+)"), rest)
        if match is None:
            raise AssertionError(f"the block stopped before command {number + 1}:\n{rest}")
        yield rest[: match.start()], int(match.group(1))
        rest = rest[match.end() :]


def check_yaml(block: Block, tmp: Path) -> None:
    """A YAML block parses; a spec (it has `version:`) passes the spec loader; every
    `rolecast` command in a `run:` step parses (its options are checked with --help)."""
    from orchestrator.spec import load_spec

    data = yaml.safe_load(block.text)
    if isinstance(data, dict) and "version" in data:
        (tmp / "rolecast.yml").write_text(block.text)
        load_spec(tmp)
    for line in rolecast_lines(data):
        check_command_line(line, f"{block.where}: ")


def check_json(block: Block) -> None:
    json.loads(block.text)


def rolecast_lines(data: Any) -> Iterator[str]:
    """Every `rolecast …` command in the `run:` steps of a GitHub workflow or the `script:`
    lines of a GitLab pipeline, anywhere in `data`."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "run" and isinstance(value, str):
                yield from _rolecast_commands(value)
            elif key in ("script", "before_script") and isinstance(value, list):  # GitLab
                for line in value:
                    yield from _rolecast_commands(str(line))
            else:
                yield from rolecast_lines(value)
    elif isinstance(data, list):
        for item in data:
            yield from rolecast_lines(item)


def _rolecast_commands(text: str) -> Iterator[str]:
    for line in text.replace("\\\n", " ").splitlines():
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line.strip()):
            if part.startswith("rolecast "):
                yield part


def check_command_line(line: str, where: str = "") -> None:
    """Parse one `rolecast …` line without running it: with --help added, every option and
    command is still checked, and nothing runs. `${{ … }}` expressions become a word; the
    line ends at a redirection or pipe."""
    lexer = shlex.shlex(re.sub(r"\$\{\{.*?\}\}", "X", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(itertools.takewhile(lambda w: w not in (">", ">>", "|", "&&", ";"), lexer))
    done = CliRunner().invoke(app, [*words[1:], "--help"])
    assert done.exit_code == 0, f"{where}`{line}` does not parse:\n{done.output}"
