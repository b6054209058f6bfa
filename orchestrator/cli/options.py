"""Options several commands take, spelled once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--version",
        metavar="VERSION",
        envvar="ROLECAST_VERSION",
        help="The version tag templates see.",
    ),
]
TagOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="TEMPLATE",
        envvar="ROLECAST_TAG",
        help="Another tag (template) for every image; the variable holds them space-separated.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print the result as JSON.")]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report",
        metavar="FILE",
        envvar="ROLECAST_REPORT",
        help="Write the report (JSON) to FILE.",
    ),
]


ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        metavar="auto|mitogen|docker|proxy",
        envvar="ROLECAST_CONNECTION",
        help="Override the spec's connection.",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        envvar="ROLECAST_TIMEOUT",
        help="Seconds one image's build may take.",
    ),
]
VaultFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--vault-password-file",
        metavar="FILE",
        envvar="ROLECAST_VAULT_PASSWORD_FILE",
        help="A file (or script) with a vault password.",
    ),
]
VaultIdOption = Annotated[
    list[str] | None,
    typer.Option(
        "--vault-id", metavar="LABEL@FILE", help="A vault id, as ansible-playbook takes it."
    ),
]
IdempotenceOption = Annotated[
    bool,
    typer.Option(
        "--idempotence", metavar="", help="Apply the roles a second time; fail if any task changes."
    ),
]
ForceOption = Annotated[
    list[str] | None,
    typer.Option("--force", metavar="IMAGE", help="Rebuild IMAGE from its parent, fresh or not."),
]
NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        metavar="",
        envvar="ROLECAST_NO_CACHE",
        help="Ignore fresh images and cached stages: rebuild all.",
    ),
]
JobsOption = Annotated[
    int | None,
    typer.Option(
        "-j",
        "--jobs",
        min=1,
        metavar="N",
        envvar="ROLECAST_JOBS",
        help="Images built at once (default: CPUs).",
    ),
]
PushOption = Annotated[
    bool,
    typer.Option(
        "--push",
        metavar="",
        envvar="ROLECAST_PUSH",
        help="Push every tag of each image to its registry.",
    ),
]
CacheFromOption = Annotated[
    str | None,
    typer.Option(
        "--cache-from",
        metavar="REPO",
        envvar="ROLECAST_CACHE_FROM",
        help="Reuse stages found in this registry repository.",
    ),
]
CacheToOption = Annotated[
    str | None,
    typer.Option(
        "--cache-to",
        metavar="REPO",
        envvar="ROLECAST_CACHE_TO",
        help="Push the image's stages to this registry repository.",
    ),
]
GitlabCacheToOption = Annotated[
    str | None,
    typer.Option(
        "--cache-to",
        metavar="REPO",
        envvar="ROLECAST_CACHE_TO",
        help="With --format gitlab-ci: the jobs' `build --cache-to`.",
    ),
]
GitlabIncludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--gitlab-include",
        metavar="FILE",
        help="With --format gitlab-ci: a file of the repository the pipeline includes "
        "(the jobs' runner settings under `default:`); repeatable.",
    ),
]
KeepGoingOption = Annotated[
    bool | None,
    typer.Option(
        "--keep-going/--fail-fast",
        metavar="",
        envvar="ROLECAST_KEEP_GOING",
        help="After a failure, build what does not depend on it (default in CI), "
        "or start nothing more (default elsewhere).",
    ),
]


class ProgressMode(StrEnum):
    AUTO = "auto"
    TTY = "tty"
    PLAIN = "plain"
    QUIET = "quiet"


ProgressOption = Annotated[
    ProgressMode,
    typer.Option(
        "--progress",
        envvar="ROLECAST_PROGRESS",
        help="auto: a live view on a terminal, plain lines elsewhere; tty: the live view "
        "always; plain: timestamped lines; quiet: only errors and the result.",
    ),
]
PlainOption = Annotated[
    bool, typer.Option("--plain", hidden=True, help="The same as --progress plain.")
]


ExtraVarsOption = Annotated[
    list[str] | None,
    typer.Option(
        "-e",
        "--extra-vars",
        metavar="KEY=VALUE|YAML|@FILE",
        help="Variables for the roles, as ansible-playbook's -e (repeatable; they win over "
        "every other variable and count in the fingerprint; values stay off disk and argv).",
    ),
]


def image_names(incomplete: str) -> list[str]:
    """Shell completion of IMAGE: the images (and variants) of the spec found upward."""
    from ..errors import RolecastError
    from ..spec import load_spec
    from ..specfile import find_project_root

    root = find_project_root(Path.cwd())
    if root is None:
        return []
    try:
        spec = load_spec(root).spec
    except RolecastError:
        return []
    names: list[str] = []
    for name, image in spec.images.items():
        names += [name, *(f"{name}@{label}" for label in image.variants)]
    return [n for n in names if n.startswith(incomplete)]
