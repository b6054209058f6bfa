"""Where the spec is: rolecast.yml in the project root, found from the working directory
upward (as git finds .git) unless -C or -f say. Cheap to import: every command asks."""

from __future__ import annotations

from pathlib import Path

DEFAULT_SPEC_FILE = "rolecast.yml"


def find_project_root(start: Path) -> Path | None:
    """The nearest directory, from `start` upward, holding rolecast.yml (as git finds .git)."""
    here = start.resolve()
    for directory in (here, *here.parents):
        if (directory / DEFAULT_SPEC_FILE).is_file():
            return directory
    return None


def find_spec_file(root: Path, file: Path | None) -> Path:
    if file is not None:
        return file if file.is_absolute() else root / file
    return root / DEFAULT_SPEC_FILE
