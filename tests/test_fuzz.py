"""`rolecast validate` on generated documents: exit 0 or 2 with a message, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestrator.cli import app

from .conftest import ROOT

KEYS = [
    "version",
    "defaults",
    "images",
    "bases",
    "inventory",
    "roles_path",
    "requirements",
    "from",
    "roles",
    "playbook",
    "vars",
    "groups",
    "tags",
    "labels",
    "config",
    "cmd",
    "entrypoint",
    "env",
    "user",
    "variants",
    "verify",
    "layering",
    "push",
    "name",
    "role",
    "../../etc",
    "/etc/passwd",
    "registry",
    "base",
    "connection",
    "web",
    "base",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(KEYS),
    st.binary(max_size=20).map(repr),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), children, max_size=5
        ),
    ),
    max_leaves=30,
)
documents = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=6).map(
        lambda d: yaml.safe_dump(d, allow_unicode=True)
    ),
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)


@settings(
    max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_validate_never_tracebacks(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "roles", root / "roles")
    (root / "rolecast.yml").write_text(text, encoding="utf-8", errors="surrogateescape")
    result = CliRunner().invoke(app, ["-C", str(root), "validate"], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    if result.exit_code == 2:
        assert result.stderr.strip()


def test_a_billion_laughs_document_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["version: 1", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, 10):
        refs = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{refs}]")
    lines.append("images: *a9")
    (tmp_path / "roles").mkdir()
    (tmp_path / "rolecast.yml").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["-C", str(tmp_path), "validate"])
    assert result.exit_code == 2
    assert "YAML nodes; is an alias exploding?" in result.stderr


VALID_HEAD = "version: 1\nimages:\n  base: {from: 'debian:12', roles: [common]}\n"
ADVERSARIAL = {
    "merge keys and aliases": (
        "version: 1\nx-common: &common {from: 'debian:12', roles: [common]}\n"
        "images:\n  a: {<<: *common}\n  b: *common\n"
    ),
    "an alias to an undefined anchor": VALID_HEAD + "  web: *nowhere\n",
    "a self-referencing anchor": "version: 1\nimages: &loop\n  a: *loop\n",
    "a recursive list": "version: 1\na: &a [*a]\nimages: {}\n",
    "a 20 MB value": VALID_HEAD
    + "  big: {from: 'debian:12', labels: {x: '"
    + "y" * 20_000_000
    + "'}}\n",
    "nesting 50,000 deep": "version: 1\nimages: " + "[" * 50_000 + "]" * 50_000 + "\n",
    "nesting 50,000 deep in a block": "version: 1\nimages:\n"
    + "".join("  " * i + f"k{i}:\n" for i in range(1, 2000)),
    "a huge integer": "version: 1" + "0" * 100_000 + "\nimages: {}\n",
    "100,000 images": "version: 1\nimages:\n"
    + "".join(f"  i{n}: {{from: 'debian:12'}}\n" for n in range(100_000)),
    "a tab-indented document": "version: 1\nimages:\n\tweb: {}\n",
    "a NUL byte": "version: 1\nimages: {a\0: {}}\n",
    "a python tag": "version: 1\nimages: !!python/object/apply:os.system ['true']\n",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_documents_exit_2_or_0_within_bounds(tmp_path: Path, name: str) -> None:
    """In a child process limited to 600 MB of address space and 60 s of CPU: a document
    that exhausts either would end it with a traceback or a signal, and fail here."""
    import resource
    import subprocess
    import sys

    shutil.copytree(ROOT / "roles", tmp_path / "roles")
    (tmp_path / "rolecast.yml").write_text(ADVERSARIAL[name], encoding="utf-8")

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (600 * 2**20, 600 * 2**20))
        resource.setrlimit(resource.RLIMIT_CPU, (60, 60))

    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "-C", str(tmp_path), "validate"],
        capture_output=True,
        text=True,
        preexec_fn=limits,
        timeout=120,
    )
    assert done.returncode in (0, 2), (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    if done.returncode == 2:
        assert done.stderr.startswith("rolecast.yml"), done.stderr[:500]
