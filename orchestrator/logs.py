"""`rolecast logs`: the log of a recorded build, found through the history."""

from __future__ import annotations

from pathlib import Path

from .errors import RolecastError, UsageError
from .history import History, Record


def find_log(
    history: History, name: str, images: list[str], build: int | None, root: Path
) -> tuple[Record, Path]:
    """The build `build` of `name` (the spec's images `images`), or its newest build that
    has a log; and where its log is now."""
    if build is not None:
        record = history.record(build)
        if record is None or record.image not in images:
            raise UsageError(
                f"no build {build} of {name}; `rolecast history {name}` lists its builds"
            )
    else:
        records = history.records(images, limit=-1)
        if not records:
            raise UsageError(f"{name} was never built here; build it with `rolecast build {name}`")
        logged = [r for r in records if r.log]
        if not logged:
            raise UsageError(
                f"no build of {name} has a log: its {len(records)} recorded build(s) ran no "
                f"Packer (kept fresh); `rolecast build --force {name}` builds it again"
            )
        record = logged[0]
    if not record.log:
        raise UsageError(
            f"build {record.id} of {record.image} ran no Packer ({record.result}): it has no log"
        )
    logged_at = Path(record.log)
    # Recorded relative to where `rolecast build` ran: the project's root, most often.
    candidates = [logged_at] if logged_at.is_absolute() else [root / logged_at, logged_at]
    for path in candidates:
        if path.is_file():
            return record, path
    raise RolecastError(
        f"the log of build {record.id} of {record.image} ({record.log}) is gone (deleted, "
        "or the checkout moved); the history keeps its record: `rolecast history --json`"
    )
