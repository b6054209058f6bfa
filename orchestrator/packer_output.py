"""Reading `packer build -machine-readable`: phases, Ansible tasks, failures, the artifact."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_PREFIX = re.compile(r"^\s*(?:==> |--> )?[A-Za-z0-9_.-]+(?: \([a-z0-9-]+\))?:(?: |$)")
_TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[(?:(?P<role>[^:\]]+) : )?(?P<task>.*?)\] \**$")
_FATAL = re.compile(r"^(?:fatal|failed): \[[^\]]+\]: (?:FAILED|UNREACHABLE)! => (?P<body>.*)$")
_IMAGE_ID = re.compile(r"^Image ID: (sha256:[0-9a-f]{64})$")
_ARTIFACT_ID = re.compile(r"^\d+,(?:id),(.*)$")


def decode(text: str) -> str:
    return text.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")


@dataclass
class Line:
    """One line of what Packer said, without its machine-readable framing and build prefix."""

    kind: str  # say | message | error | raw
    text: str


def parse(raw: str) -> list[Line]:
    """Turn one machine-readable line into the text lines it carries."""
    parts = raw.split(",", 3)
    if len(parts) < 3 or not parts[0].isdigit():
        return [Line("raw", raw)]
    _, _target, kind = parts[:3]
    rest = parts[3] if len(parts) > 3 else ""
    if kind == "ui":
        level, _, text = rest.partition(",")
        return [Line(level, _PREFIX.sub("", t, count=1)) for t in decode(text).splitlines()]
    if kind == "artifact":
        return [Line("artifact", decode(rest))]
    return []


@dataclass
class Failure:
    role: str | None
    task: str | None
    message: str


@dataclass
class BuildState:
    """What the output so far says about the build."""

    phase: str = "starting"
    role: str | None = None
    task: str | None = None
    image_id: str | None = None
    tagged: list[str] = field(default_factory=list)
    failure: Failure | None = None
    ansible_error: str | None = None
    packer_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def feed(self, line: Line) -> str | None:
        """Update from one line; returns the new phase when the line starts one."""
        text = line.text.strip()
        if line.kind == "artifact":
            return None
        if line.kind == "error" and text.startswith(("Build '", "Error:", "* ")):
            self.packer_errors.append(text)
        if text.startswith("Stderr: ") and len(text) > len("Stderr: "):
            self.packer_errors.insert(0, text[len("Stderr: ") :])
        if text.startswith("rolecast: "):
            self.notes.append(text[len("rolecast: ") :])
            return None
        match = _TASK.match(text)
        if match:
            self.role = match.group("role")
            self.task = match.group("task")
            return "task"
        match = _FATAL.match(text)
        if match:
            self.failure = Failure(self.role, self.task, _ansible_message(match.group("body")))
            return None
        if text.startswith("...ignoring"):
            self.failure = None
            return None
        if text.startswith("ERROR! "):
            self.ansible_error = text[len("ERROR! ") :]
            return None
        match = _IMAGE_ID.match(text)
        if match:
            self.image_id = match.group(1)
            return None
        if text.startswith("Repository: "):
            self.tagged.append(text[len("Repository: ") :])
            return None
        for needle, phase in (
            ("Starting docker container", "starting container"),
            ("Pulling Docker image", "pulling parent image"),
            ("Provisioning with shell script", None),
            ("Provisioning with Ansible", "ansible"),
            ("Committing the container", "committing"),
            ("Running post-processor", "tagging"),
        ):
            if text.startswith(needle):
                if phase is None:
                    phase = "preparing" if self.phase != "ansible" else "cleaning up"
                self.phase = phase
                return phase
        return None


def _ansible_message(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()
    if not isinstance(data, dict):
        return body.strip()
    msg = data.get("msg") or data.get("reason") or ""
    stderr = (data.get("stderr") or "").strip()
    if stderr and (not msg or msg.startswith("non-zero return code")):
        msg = f"{msg}: {stderr.splitlines()[-1]}" if msg else stderr.splitlines()[-1]
    return str(msg).strip() or body.strip()
