"""The layout a newcomer relies on: short classes and functions, no import circle, each
layer importing only the layers below it, and the Docker SDK behind the engine interface."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "orchestrator"
MODULES = sorted(PACKAGE.rglob("*.py"))

# Bottom to top: a module may import its own layer and the layers below it.
LAYERS = [
    {"", "errors", "digests", "names", "report", "yamlsource", "guard", "runner", "locks",
     "credentials", "specfile", "extra_vars", "history", "logs", "packer_output", "container",
     "container.services"},
    {"spec", "tagvars", "engines", "engines.address", "engines.interface", "engines.socket_api",
     "engines.docker", "engines.podman", "engines.podman_cli"},
    {"project", "project.model", "project.roles", "project.inventory", "project.parents",
     "project.resolver", "project.inventory_view"},
    {"variables", "fingerprint", "state", "tags", "tools", "provision", "packer_plugins"},
    {"plan", "registry", "render", "graph", "requirements", "bases", "gates", "checks",
     "checks.files", "checks.origin", "checks.plays", "checks.vault",
     "checks.memo"},
    {"publish"},
    {"build", "build.context", "build.preflight", "build.fleet", "build.image",
     "build.recovery", "build.parents", "build.stages", "build.cache", "build.inputs",
     "build.packer", "build.verify", "build.preview", "build.fresh", "build.push"},
    {"progress", "starter"},
    {"cli", "cli.app", "cli.arguments", "cli.options", "cli.inspecting", "cli.building",
     "cli.cache", "__main__"},
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """The modules of the package `path` imports, at any depth of its code."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                found.add(candidate if candidate in NAMES else target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("orchestrator"):
            found.add(node.module.removeprefix("orchestrator").lstrip("."))  # type: ignore[union-attr]
    return {f for f in found if f in NAMES and f != name}


NAMES = {module_name(p) for p in MODULES}


def test_every_module_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert NAMES - placed == set(), "put the new module in a layer of LAYERS"


def test_no_module_of_the_package_is_ignored_by_git() -> None:
    """A module a `.gitignore` rule matches is never committed: a clean clone lacks it."""
    import subprocess

    relative = [str(p.relative_to(ROOT)) for p in MODULES]
    done = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "--no-index", *relative],
        capture_output=True,
        text=True,
    )
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.split() == []


def test_no_module_imports_a_layer_above_it() -> None:
    rank = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    upward = [
        f"{module_name(path)} imports {other}"
        for path in MODULES
        for other in sorted(imported(path))
        if rank[other] > rank[module_name(path)]
    ]
    assert upward == []


def test_no_import_circle() -> None:
    graph = {module_name(path): imported(path) for path in MODULES}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle


def test_the_docker_sdk_is_imported_only_by_the_docker_engine() -> None:
    users = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == "docker" or n.startswith("docker.") for n in names):
                users.append(module_name(path))
    assert set(users) == {"engines.docker"}


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_classes_and_functions_are_short(path: Path) -> None:
    long = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = 400 if isinstance(node, ast.ClassDef) else 80
            if length > limit:
                long.append(f"{node.name}: {length} lines (at most {limit})")
    assert long == []
