"""What each image is built from: another image of the file, a base, or a registry image."""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Callable

from ..spec import REFERENCE_RE, Image, Spec
from .model import ParentKind

Report = Callable[[tuple[str | int, ...], str], None]


def parent_of(spec: Spec, name: str, image: Image, report: Report) -> tuple[ParentKind, str]:
    loc: tuple[str | int, ...] = ("images", name)
    parent = image.from_ or spec.defaults.base
    if parent is None:
        report(loc, "no 'from:'; name a base image here or set defaults.base")
        return "external", ""
    if parent == name:
        report((*loc, "from"), f"{name!r} cannot be built from itself")
        return "external", parent
    if parent in spec.images:
        return "image", parent
    if parent in spec.bases:
        return "base", parent
    where = (*loc, "from") if image.from_ else ("defaults", "base")
    close = difflib.get_close_matches(parent, [*spec.images, *spec.bases], n=1)
    if close and ":" not in parent and "/" not in parent:
        report(
            where,
            f"{parent!r} is not an image or base of this file; did you mean "
            f"{close[0]!r}? (write {parent}:TAG to use a registry image)",
        )
    elif not REFERENCE_RE.match(parent):
        report(where, f"{parent!r} is not a valid image reference")
    return "external", parent


def check_cycles(graph: dict[str, set[str]], report: Report) -> None:
    """A `from:` cycle, named from its first image in name order."""
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))[:-1]
        start = min(cycle)
        cycle = cycle[cycle.index(start) :] + cycle[: cycle.index(start)]
        links = ", ".join(
            f"{a} from {b}" if i else f"{a} is built from {b}"
            for i, (a, b) in enumerate(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        )
        report(
            ("images", start, "from"),
            f"'from:' cycle: {links}; one of these must start from a base image",
        )
