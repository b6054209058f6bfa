"""Every code block of README.md is run or parsed here (or, needing the engine, in
tests/engine/test_readme.py), so no example can go stale. The convention is in README,
Contributing; tests/readme_blocks.py runs the blocks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .readme_blocks import (
    README,
    Block,
    check_command_line,
    check_json,
    check_output,
    check_yaml,
    problems,
    readme_blocks,
    rolecast_lines,
    run_console,
)

BLOCKS = readme_blocks()
FAST = [b for b in BLOCKS if b.kind in ("console", "yaml", "json") and "engine" not in b.marks]
WORKFLOW = ROOT / "docs" / "examples" / "github-actions.yml"
GITLAB = ROOT / "docs" / "examples" / "gitlab-ci.yml"
GITLAB_JOBS = ROOT / "docs" / "examples" / "rolecast-jobs.yml"


def test_every_block_is_run_or_marked_with_a_reason() -> None:
    found = [problem for block in BLOCKS for problem in problems(block)]
    assert not found, "\n".join(found)
    kinds = {b.kind for b in BLOCKS}
    assert {"console", "yaml", "json", "text", "not-run"} <= kinds, kinds


@pytest.mark.parametrize("block", FAST, ids=[b.where for b in FAST])
def test_readme_block(block: Block, tmp_path: Path) -> None:
    if block.kind == "console":
        run_console(block, tmp_path, timeout=300)
    elif block.kind == "yaml":
        check_yaml(block, tmp_path)
    else:
        check_json(block)


def anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, no punctuation, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contents_list_every_section_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^(#{2,6}) (.+)$", text, re.M)
    sections = [anchor(title) for level, title in headings if level == "##"]
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[.+?\]\(#([^)]+)\)", contents, re.M)
    assert listed == [s for s in sections if s != "contents"]
    every = {anchor(title) for _, title in headings}
    broken = set(re.findall(r"\]\(#([^)]+)\)", text)) - every
    assert not broken, f"links to no heading: {sorted(broken)}"


def test_the_github_actions_example_is_the_file_and_parses() -> None:
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    # YAML 1.1 reads the key `on:` as True: GitHub reads it as "on".
    assert set(workflow) >= {"name", True, "jobs"}
    shown = [b.text for b in BLOCKS if b.lang == "yaml"]
    assert text in shown, "the workflow in README.md differs from docs/examples/github-actions.yml"
    lines = list(rolecast_lines(workflow))
    assert {"validate", "plan", "build"} <= {line.split()[1] for line in lines}, lines
    assert any("--push" in line.split() for line in lines), lines
    for line in lines:
        check_command_line(line)


def test_the_gitlab_ci_examples_are_the_files_and_parse() -> None:
    shown = [b.text for b in BLOCKS if b.lang == "yaml"]
    pipeline = yaml.safe_load(GITLAB.read_text())
    assert GITLAB.read_text() in shown and GITLAB_JOBS.read_text() in shown
    assert pipeline["images"]["trigger"]["include"] == [
        {"artifact": "rolecast-pipeline.yml", "job": "plan"}
    ]
    lines = list(rolecast_lines(pipeline))
    (plan,) = [line for line in lines if line.split()[1] == "plan"]
    assert "--format gitlab-ci" in plan and "> rolecast-pipeline.yml" in plan
    assert "ci/rolecast-jobs.yml" in plan
    for line in lines:
        check_command_line(line)
    assert set(yaml.safe_load(GITLAB_JOBS.read_text())) == {"default", "variables"}


def test_the_block_checks_fail_on_a_stale_example(tmp_path: Path) -> None:
    """The checks can fail: a wrong output, a failed command, a bad option, a missing reason,
    a block no test runs, an engine command in an unmarked block."""
    stale = readme_blocks(
        "```console\n$ rolecast validate\nall good\n```\n"
        "<!-- setup: typos -->\n```console\n$ rolecast validate\n```\n"
        "```console\n$ rolecast plan\n```\n"
        "<!-- not-run: -->\n```console\n$ make\n```\n```\nprose\n```\n"
        "<!-- engine -->\n```yaml\na: 1\n```\n"
    )
    with pytest.raises(AssertionError, match="is not what the README shows"):
        run_console(stale[0], tmp_path / "a", timeout=120)
    with pytest.raises(AssertionError, match="exited 2"):
        run_console(stale[1], tmp_path / "b", timeout=120)
    with pytest.raises(AssertionError, match="exited 3"):
        run_console(stale[2], tmp_path / "c", timeout=120)
    with pytest.raises(AssertionError, match="does not parse"):
        check_command_line("rolecast build --no-such-option")
    assert problems(stale[3]) and problems(stale[4]) and problems(stale[5])
    check_output(
        Block(1, "console", "$ false\n$ echo $?\n1\n"),
        "\n@@readme-command 0 ended: 1@@\n1\n@@readme-command 1 ended: 0@@\n",
    )
