"""Tag templates (`{{ version }}`, `{{ git.short_sha }}`, ...) resolved at build time."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .errors import UsageError
from .runner import capture
from .spec import TAG_RE


@dataclass(frozen=True)
class GitInfo:
    sha: str | None = None
    branch: str | None = None
    remote: str | None = None

    @property
    def short_sha(self) -> str | None:
        return f"sha-{self.sha[:7]}" if self.sha else None


def git_info(root: Path) -> GitInfo:
    """The commit being built, when the project is a git checkout (credentials stripped)."""
    sha = capture(["git", "-C", str(root), "rev-parse", "HEAD"])
    if sha is None:
        return GitInfo()
    branch = capture(["git", "-C", str(root), "rev-parse", "--abbrev-ref", "HEAD"])
    remote = capture(["git", "-C", str(root), "config", "--get", "remote.origin.url"])
    if remote:
        remote = re.sub(r"://[^/@]+@", "://", remote.strip())
    return GitInfo(
        sha=sha.strip(),
        branch=branch.strip() if branch and branch.strip() != "HEAD" else None,
        remote=remote or None,
    )


def sanitise(value: str) -> str:
    """A branch name as a valid tag: `feature/Login Page` -> `feature-login-page`."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip(".-").lower()
    return cleaned[:128] or "none"


_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def resolve_tags(
    templates: list[str],
    *,
    version: str | None,
    git: GitInfo,
    now: dt.datetime,
    image: str,
) -> list[str]:
    """Render each template; a missing value or an invalid result is an input error."""
    context: dict[str, object] = {
        "date": now.strftime("%Y%m%d"),
        "git": {
            k: v
            for k, v in (
                ("sha", git.sha),
                ("short_sha", git.short_sha),
                ("branch", sanitise(git.branch) if git.branch else None),
            )
            if v is not None
        },
    }
    if version is not None:
        context["version"] = version
    out: list[str] = []
    for text in templates:
        try:
            tag = _env.from_string(text).render(context).strip()
        except jinja2.UndefinedError as exc:
            hint = "pass --version" if "version" in str(exc) else "build from a git checkout"
            raise UsageError(
                f"image {image}: tag template {text!r}: {exc.message}; {hint}"
            ) from None
        except jinja2.TemplateError as exc:
            raise UsageError(f"image {image}: tag template {text!r}: {exc}") from None
        if not TAG_RE.match(tag):
            raise UsageError(f"image {image}: tag template {text!r} gave {tag!r}, not a valid tag")
        if tag not in out:
            out.append(tag)
    return out
