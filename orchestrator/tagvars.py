"""What a tag template may use (`version`, `date`, `git.sha`, ...) and what it misspells.

Checked where the spec is read, so that `{{ verison }}` is a spec error with its line and
a "did you mean", not a tag `web:{{ verison }}` or a failure at build time."""

from __future__ import annotations

import difflib
import functools
from typing import Any

VARIABLES = ("version", "date", "git", "fingerprint")
GIT_FIELDS = ("sha", "short_sha", "branch")
MARKS = ("{{", "{%", "{#")


def is_template(text: str) -> bool:
    """Whether Jinja would do anything to `text`: plain tags (`latest`) need no Jinja,
    whose import costs ~40 ms a run."""
    return any(mark in text for mark in MARKS)


@functools.cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(autoescape=False)


def _suggest(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; use {', '.join(known)}"


def template_problems(text: str) -> list[str]:
    """What is wrong with one tag template, in words: syntax, unknown names, unknown git fields."""
    if not is_template(text):
        return []
    import jinja2
    from jinja2 import meta, nodes

    try:
        parsed = _environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return [f"tag template {text!r}: Jinja syntax error: {exc.message}"]
    problems = [
        f"tag template {text!r} uses {name!r}, which is not a tag variable"
        + _suggest(name, VARIABLES)
        for name in sorted(meta.find_undeclared_variables(parsed))
        if name not in VARIABLES
    ]
    for node in parsed.find_all(nodes.Getattr):
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "git" and node.attr not in GIT_FIELDS:
            problems.append(
                f"tag template {text!r} uses git.{node.attr}, which git does not have"
                + _suggest(node.attr, GIT_FIELDS)
            )
    return problems


def uses(variable: str, text: str) -> bool:
    """Whether a tag template reads `variable` (`git`, `version`, ...)."""
    if not is_template(text):
        return False
    import jinja2
    from jinja2 import meta

    try:
        return variable in meta.find_undeclared_variables(_environment().parse(text))
    except jinja2.TemplateSyntaxError:
        return False
