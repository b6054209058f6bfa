"""Options several commands take, spelled once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

VersionOption = Annotated[
    str | None, typer.Option("--version", help="The version tag templates see.")
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", metavar="TEMPLATE", help="Another tag (template) for every image."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write the report (JSON) to FILE."),
]


ConnectionOption = Annotated[
    str | None,
    typer.Option("--connection", help="Override the spec: auto, mitogen, docker or proxy."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds one image's build may take.")
]
VaultFileOption = Annotated[
    list[Path] | None,
    typer.Option("--vault-password-file", help="A file (or script) with a vault password."),
]
VaultIdOption = Annotated[
    list[str] | None,
    typer.Option("--vault-id", help="A vault id, LABEL@FILE, as ansible-playbook takes it."),
]
IdempotenceOption = Annotated[
    bool,
    typer.Option("--idempotence", help="Apply the roles a second time; fail if any task changes."),
]
ForceOption = Annotated[
    list[str] | None,
    typer.Option("--force", metavar="IMAGE", help="Rebuild IMAGE from its parent, fresh or not."),
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Ignore fresh images and cached stages: rebuild all.")
]
JobsOption = Annotated[
    int | None, typer.Option("-j", "--jobs", min=1, help="Images built at once (default: CPUs).")
]
PushOption = Annotated[
    bool, typer.Option("--push", help="Push every tag of each image to its registry.")
]
CacheFromOption = Annotated[
    str | None,
    typer.Option(
        "--cache-from", metavar="REPO", help="Reuse stages found in this registry repository."
    ),
]
CacheToOption = Annotated[
    str | None,
    typer.Option(
        "--cache-to", metavar="REPO", help="Push the image's stages to this registry repository."
    ),
]
KeepGoingOption = Annotated[
    bool | None,
    typer.Option(
        "--keep-going/--fail-fast",
        help="After a failure, build what does not depend on it (default in CI), "
        "or start nothing more (default elsewhere).",
    ),
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
