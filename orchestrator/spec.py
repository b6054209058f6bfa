"""The `rolecast.yml` format, version 1: typed models and a loader whose errors point at lines."""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import Problem, SpecError
from .names import PACKER_PLUGIN_DEFAULTS
from .specfile import find_spec_file
from .yamlsource import Loc, YamlDocument, format_path, load_yaml

SPEC_VERSION = 1

Connection = Literal["auto", "mitogen", "docker", "proxy"]
# `role`: one cached layer per listed role; `single`: the roles run as one stage.
Layering = Literal["role", "single"]
# run: a service manager during the build, every service stopped before each commit;
# skip: starts and restarts are recorded and skipped (no process is started).
Services = Literal["run", "skip"]
EngineKind = Literal["docker", "podman"]

NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?)"
REFERENCE_RE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?:/{_COMPONENT})*$")


def names_a_host(component: str) -> bool:
    """Whether Docker reads a reference's first component as a registry host."""
    return "." in component or ":" in component or component == "localhost"


def registry_problem(value: str, *, repository: bool = False) -> str | None:
    """Why `value` is not a registry prefix (HOST[:PORT][/PATH]; with `repository`, a
    path is required), or None. Docker reads a first part with no '.', no ':' and not
    `localhost` as a path, which must be lowercase; a port is 1-65535."""
    shape = "HOST[:PORT]/PATH" if repository else "HOST[:PORT][/PATH]"
    text = value.rstrip("/")
    if not REGISTRY_RE.match(text) or (repository and "/" not in text):
        kind = "repository" if repository else "prefix"
        return f"{value!r} is not a registry {kind}; write {shape}, e.g. localhost:5000/team"
    first = text.split("/", 1)[0]
    host, _, port = first.partition(":")
    if port and not 0 < int(port) < 65536:
        return f"{value!r}: port {port} is out of range (1-65535)"
    if not names_a_host(first) and host != host.lower():
        return (
            f"{value!r}: Docker reads {host!r} as a path, not a registry host, and paths are "
            "lowercase; write the host with its domain or port (registry.example:5000)"
        )
    return None


PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/(tcp|udp|sctp))?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SIGNAL_RE = re.compile(r"^(?:SIG[A-Z0-9+-]+|[0-9]+)$")


def _scalar_to_str(value: Any) -> Any:
    """YAML turns `1`, `yes` and `1.5` into numbers and booleans; env and labels want text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _command(value: Any) -> Any:
    """A string is Docker's shell form; a list is the exec form."""
    if isinstance(value, str):
        return ["/bin/sh", "-c", value]
    return value


def _env_name(name: str) -> str:
    if not ENV_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid environment variable name")
    return name


def _port(port: str) -> str:
    match = PORT_RE.match(port)
    if not match or not all(1 <= int(p) <= 65535 for p in match.group(1, 2) if p is not None):
        raise ValueError(f"{port!r} is not a port; write 8080, 8080/udp or 8000-8010/tcp")
    return port


def _name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a valid name: lowercase letters and digits, "
            "separated by '.', '_' or '-'"
        )
    return name


def _plugin_version(version: str) -> str:
    if not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version):
        raise ValueError(
            f"{version!r} is not an exact version: write one such as 1.1.4 (Packer's plugins "
            "are pinned, so that a build uses the plugin it was tested with)"
        )
    return version


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be one line: `docker commit` cannot store a line break here")
    return value


LineValue = Annotated[str, BeforeValidator(_scalar_to_str), AfterValidator(_one_line)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Port = Annotated[str, BeforeValidator(_scalar_to_str), AfterValidator(_port)]
Name = Annotated[str, AfterValidator(_name)]
Command = Annotated[list[str], BeforeValidator(_command)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_tag(tag: str) -> str:
    if "{{" in tag:
        return tag  # a template, resolved at build time
    if not TAG_RE.match(tag):
        raise ValueError(
            f"{tag!r} is not a valid image tag (letters, digits, '_', '.', '-'; "
            "at most 128; not starting with '.' or '-')"
        )
    return tag


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        if not key or any(ch.isspace() for ch in key):
            raise ValueError(f"label key {key!r} must be non-empty and without spaces")
    return labels


Labels = Annotated[dict[str, LineValue], AfterValidator(_check_labels)]


class Defaults(Strict):
    """Values every image inherits unless it sets its own."""

    registry: str | None = None
    base: str | None = None
    tags: list[str] = Field(default_factory=lambda: ["latest"])
    labels: Labels = Field(default_factory=dict)
    connection: Connection = "auto"
    layering: Layering = "role"
    services: Services = "run"
    # The engine kind, as --engine gives it (which wins); none: as the engine answers.
    engine: EngineKind | None = None

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        problem = registry_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value.rstrip("/") if value else value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [_check_tag(t) for t in value]


class BaseImage(Strict):
    """A base image made with debootstrap, for sites with no registry to pull one from."""

    suite: str = "bookworm"
    variant: Literal["minbase", "buildd", "fakechroot", "default"] = "minbase"
    include: list[str] = Field(default_factory=lambda: ["python3"])
    mirror: str | None = None
    image: str | None = None

    @field_validator("include")
    @classmethod
    def _packages(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[a-z0-9][a-z0-9+.-]+$", name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not REFERENCE_RE.match(value):
            raise ValueError(f"{value!r} is not a valid image reference (NAME[:TAG])")
        return value


def _role_name(value: str) -> str:
    if not value or value.startswith("/") or ".." in Path(value).parts:
        raise ValueError(
            f"{value!r} is not a role name; name a role under roles_path "
            "(no absolute or '..' paths)"
        )
    return value


class RoleRef(Strict):
    """One role to apply, with variables only it sees."""

    role: str
    vars: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"role": _role_name(value)}
        return value

    @field_validator("role")
    @classmethod
    def _name(cls, value: str) -> str:
        return _role_name(value)


class ImageConfig(Strict):
    """The container config committed into the image (Dockerfile-equivalent instructions)."""

    entrypoint: Command | None = None
    cmd: Command | None = None
    env: dict[EnvName, LineValue] = Field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    expose: list[Port] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    labels: Labels = Field(default_factory=dict)
    stopsignal: str | None = None
    cleanup: bool = True
    keep_ansible_deps: bool = False
    # services: PID 1 of the image is the build's service manager in its init mode: it
    # starts the enabled units, reaps zombies, and stops them on `docker stop`.
    init: Literal["services"] | None = None

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.-]+)?$", value):
            raise ValueError(f"{value!r} is not a user; write NAME, UID, or USER:GROUP")
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path, e.g. /srv/app")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"volume {path!r} must be an absolute path")
        return value

    @field_validator("stopsignal")
    @classmethod
    def _signal(cls, value: str | None) -> str | None:
        if value is not None and not SIGNAL_RE.match(value):
            raise ValueError(f"{value!r} is not a signal; write e.g. SIGTERM or 15")
        return value

    @model_validator(mode="after")
    def _init_is_the_entrypoint(self) -> ImageConfig:
        if self.init == "services" and self.entrypoint is not None:
            raise ValueError(
                "init: services makes the service manager the entrypoint; remove "
                "entrypoint (cmd, if set, names the units to start instead of the enabled ones)"
            )
        return self


class Verify(Strict):
    """Checks run against a container of the built image before any tag moves."""

    playbook: str | None = None
    commands: list[str] = Field(default_factory=list)
    run: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Verify:
        if bool(self.playbook) == bool(self.commands):
            raise ValueError("set either 'playbook' or 'commands'")
        return self


class Image(Strict):
    """One image to build."""

    from_: str | None = Field(default=None, alias="from")
    name: str | None = None
    description: str | None = None
    roles: list[RoleRef] = Field(default_factory=list)
    playbook: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list)
    tags: list[str] | None = None
    labels: Labels = Field(default_factory=dict)
    config: ImageConfig = Field(default_factory=ImageConfig)
    connection: Connection | None = None
    layering: Layering | None = None
    services: Services | None = None
    push: bool = False
    host: str | None = None
    variants: dict[Name, str] = Field(default_factory=dict)
    verify: Verify | None = None
    idempotence: bool = False

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return [_check_tag(t) for t in value] if value is not None else None

    @field_validator("name")
    @classmethod
    def _repo_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(rf"^{_COMPONENT}(?:/{_COMPONENT})*$", value):
            raise ValueError(f"{value!r} is not a repository name (lowercase, digits, '._-/')")
        return value

    @model_validator(mode="after")
    def _roles_or_playbook(self) -> Image:
        if self.roles and self.playbook:
            raise ValueError("set either 'roles' or 'playbook', not both")
        return self


PluginVersion = Annotated[str, BeforeValidator(_scalar_to_str), AfterValidator(_plugin_version)]


class PackerPlugins(Strict):
    """The versions of Packer's plugins a build uses with Packer 1.7 and later."""

    docker: PluginVersion = PACKER_PLUGIN_DEFAULTS["docker"]
    ansible: PluginVersion = PACKER_PLUGIN_DEFAULTS["ansible"]


class Spec(Strict):
    """A whole `rolecast.yml`."""

    version: int
    defaults: Defaults = Field(default_factory=Defaults)
    inventory: str | None = None
    roles_path: list[str] = Field(default_factory=lambda: ["roles"])
    requirements: str | None = None
    packer_plugins: PackerPlugins = Field(default_factory=PackerPlugins)
    bases: dict[Name, BaseImage] = Field(default_factory=dict)
    images: dict[Name, Image] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value != SPEC_VERSION or isinstance(value, bool):
            raise ValueError(
                f"unsupported spec version {value}; this rolecast reads version {SPEC_VERSION}"
            )
        return value


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the file it came from, so later checks can point at lines too."""

    spec: Spec
    path: Path
    root: Path
    doc: YamlDocument

    def problem(self, loc: Loc, message: str) -> Problem:
        return self.doc.problem(loc, message)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional so the walker sees the model or container underneath."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model that validated the mapping at `loc`, to suggest the keys it knows."""
    current: Any = Spec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            match = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part),
                None,
            )
            if match is None:
                return None
            current = match.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _message(error: Any, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        if model is None:
            return f"unknown key {key!r}"
        known = _known_keys(model)
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f"unknown key {key!r}; did you mean {close[0]!r}?"
        return f"unknown key {key!r}; valid keys: {', '.join(known)}"
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing"
    msg = re.sub(r" or instance of \w+", "", str(error["msg"]))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind.endswith("_type") or kind in ("dict_type", "list_type", "model_type"):
        got = type(error.get("input")).__name__
        names = {"NoneType": "nothing", "dict": "a mapping", "list": "a list", "str": "a string"}
        msg = f"{msg[0].lower()}{msg[1:]}, got {names.get(got, got)}"
    elif kind == "too_short" and loc == ("images",):
        msg = "define at least one image"
    return msg


def _clean_loc(raw: tuple[Any, ...]) -> Loc:
    """Drop pydantic's internal markers (validator names, `[key]`) from a location."""
    return tuple(
        p for p in raw if isinstance(p, int) or not (str(p).startswith("function-") or p == "[key]")
    )


def parse_spec(doc: YamlDocument) -> Spec:
    """Validate parsed YAML into a Spec; every pydantic error becomes a located Problem."""
    if doc.data is None:
        raise SpecError([doc.problem((), "the file is empty; start from `rolecast init`")])
    if not isinstance(doc.data, dict):
        raise SpecError(
            [doc.problem((), f"the top level must be a mapping, got {type(doc.data).__name__}")]
        )
    try:
        return Spec.model_validate(doc.data)
    except ValidationError as exc:
        problems: list[Problem] = []
        seen: set[tuple[Loc, str]] = set()
        for error in exc.errors():
            loc = _clean_loc(error["loc"])
            if error["type"] == "missing":
                message = _message(error, loc)
                problem = doc.problem(loc[:-1], message)
                problem = Problem(
                    problem.file, problem.line, problem.column, format_path(loc[:-1]), message
                )
            else:
                message = _message(error, loc)
                at_key = error["type"] == "extra_forbidden" or "[key]" in error["loc"]
                problem = doc.problem(loc, message, key=at_key)
            if (loc, message) not in seen:
                seen.add((loc, message))
                problems.append(problem)
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise SpecError(problems) from None


def load_spec(root: Path, file: Path | None = None) -> LoadedSpec:
    """Read and validate the spec; raises SpecError with one located line per problem."""
    path = find_spec_file(root, file)
    display = display_path(path, root)
    doc = load_yaml(path, display)
    spec = parse_spec(doc)
    return LoadedSpec(spec=spec, path=path, root=root, doc=doc)


def display_path(path: Path, root: Path) -> str:
    """A file as messages name it: from the current directory, else from the project."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)
