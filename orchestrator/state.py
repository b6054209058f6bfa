"""The record of each image's last good build, `.rolecast/state/IMAGE.json`.

A build reads it once, at its start (what the image was built from, and which image that
made), and writes it once, at its end, after the image is tagged. `rolecast plan`
compares against it; `rolecast push` pushes the image it names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fingerprint import Manifest
from .project import Project, ResolvedImage

STATE_DIR = Path(".rolecast") / "state"


def state_file(project: Project, image: ResolvedImage) -> Path:
    return project.root / STATE_DIR / f"{image.slug}.json"


@dataclass(frozen=True)
class LastBuild:
    image_id: str
    tags: list[str]
    manifest: Manifest

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    @classmethod
    def read(cls, project: Project, image: ResolvedImage) -> LastBuild | None:
        try:
            data = json.loads(state_file(project, image).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict) or not data.get("image_id"):
            return None
        return cls(str(data["image_id"]), list(data.get("tags") or []), Manifest.from_dict(data))

    def write(self, project: Project, image: ResolvedImage) -> None:
        """Record a successful build: what went in, and the image that came out."""
        path = state_file(project, image)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"image_id": self.image_id, "tags": self.tags}
        data |= self.manifest.as_dict()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
