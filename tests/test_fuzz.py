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
