"""Tag templates (`{{ version }}`, `{{ git.short_sha }}`, ...) resolved at build time."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .project import ResolvedImage
from .runner import capture
from .spec import TAG_RE
from .tagvars import is_template


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


@functools.cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


# Semantic versions, as tags allow them (no `+build`): `1.4.2`, `v1.4.2`, `1.5.0-rc.1`.
SEMVER = re.compile(r"^(v?)(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")
MOVING = "latest"


def is_release(version: str) -> bool:
    """Not a pre-release: a semantic version without a `-rc.1` part, or a version of another
    scheme (`2026.11`, a build number), which has no pre-releases to tell apart."""
    found = SEMVER.match(version)
    return found is None or found.group(5) is None


def version_expansions(version: str) -> list[str]:
    """`1.4.2` also gives `1.4` and `1`; a pre-release or another scheme gives only itself."""
    found = SEMVER.match(version)
    if found is None or found.group(5) is not None:
        return [version]
    prefix, major, minor, _ = found.groups()[:4]
    return [version, f"{prefix}{major}.{minor}", f"{prefix}{major}"]


def resolve_tags(
    templates: list[str],
    *,
    version: str | None,
    git: GitInfo,
    now: dt.datetime,
    image: str,
    fingerprint: str | None = None,
    moving: set[str] | None = None,
) -> list[str]:
    """Render each template; a missing value or an invalid result is an input error.

    A template using `{{ version }}` gives one tag per expansion of a release version
    (`1.4.2`, `1.4`, `1`). `latest` is applied only when asked for, and not when the
    version being built is a pre-release. `moving`, when given, receives the tags that move
    from image to image (`latest`; `1.4` and `1` of `1.4.2`; a branch name): a push sends
    them after the others.
    """
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
    if fingerprint is not None:
        context["fingerprint"] = fingerprint[:12]
    out: list[str] = []
    for text in templates:
        rendered, uses_branch = [text.strip()], False  # what Jinja makes of plain text
        if is_template(text):
            rendered, uses_branch = _render(text, context, version, image)
        for index, tag in enumerate(rendered):
            if moving is not None and (index > 0 or uses_branch or tag == MOVING):
                moving.add(tag)
            if not TAG_RE.match(tag):
                reason = "over 128 characters" if len(tag) > 128 else "not a valid tag"
                raise UsageError(f"image {image}: tag template {text!r} gave {tag!r}, {reason}")
            if tag == MOVING and version is not None and not is_release(version):
                continue  # a pre-release never moves `latest`
            if tag not in out:
                out.append(tag)
    if not out:
        raise UsageError(
            f"image {image}: no tag left: `latest` is not applied to the pre-release {version}; "
            "add a tag template such as '{{ version }}'"
        )
    return out


def _render(
    text: str, context: dict[str, object], version: str | None, image: str
) -> tuple[list[str], bool]:
    """A template's tags (one per expansion of the version it uses), and whether it uses
    the branch."""
    import jinja2
    from jinja2 import meta

    env = _environment()
    try:
        parsed = env.parse(text)
        uses_version = "version" in meta.find_undeclared_variables(parsed)
        uses_branch = "branch" in text and "git" in meta.find_undeclared_variables(parsed)
        values: list[str | None] = [version]
        if version is not None and uses_version:
            values = list(version_expansions(version))
        rendered = []
        for value in values:
            extra = {"version": value} if value is not None else {}
            rendered.append(env.from_string(text).render(context | extra).strip())
    except jinja2.UndefinedError as exc:
        hint = "pass --version" if "'version'" in str(exc) else "check its variables"
        if "git" in str(exc) or "attribute" in str(exc):
            hint = "build from a git checkout with a commit (the template uses git)"
        raise UsageError(f"image {image}: tag template {text!r}: {exc.message}; {hint}") from None
    except jinja2.TemplateError as exc:
        raise UsageError(f"image {image}: tag template {text!r}: {exc}") from None
    return rendered, uses_branch


UNBUILT_FINGERPRINT = "0" * 64  # what `{{ fingerprint }}` sees of an image never built


@dataclass(frozen=True)
class TagRules:
    """What an image's tags are resolved with in one run: the version, the extra `--tag`
    templates, the commit and the time the run started."""

    version: str | None = None
    extra: tuple[str, ...] = ()
    git: GitInfo = GitInfo()
    now: dt.datetime = dt.datetime.fromtimestamp(0, dt.UTC)

    def immutable(self, image: ResolvedImage, fingerprint: str) -> list[str]:
        """The image's tags that never move to another image (a version, a commit)."""
        moving: set[str] = set()
        tags = self.for_image(image, fingerprint, moving)
        return [t for t in tags if t not in moving]

    def for_image(
        self, image: ResolvedImage, fingerprint: str | None, moving: set[str] | None = None
    ) -> list[str]:
        """The image's tags; before its fingerprint is known (`None`), `{{ fingerprint }}`
        resolves to a placeholder, so that every tag is checked before any work."""
        extra = [f"{t}-{image.variant}" if image.variant else t for t in self.extra]
        return resolve_tags(
            [*image.tags, *extra],
            version=self.version,
            git=self.git,
            now=self.now,
            image=image.name,
            fingerprint=fingerprint or UNBUILT_FINGERPRINT,
            moving=moving,
        )
