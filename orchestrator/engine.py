"""Running Packer for each image: prepare inputs, stream progress, clean up on every exit."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from requests.exceptions import RequestException

from . import __version__, gates, render
from .bases import image_exists, make_base
from .errors import (
    BuildFailedError,
    CommandFailedError,
    CommandTimeoutError,
    InterruptedBuildError,
    ToolMissingError,
    UsageError,
)
from .fingerprint import Manifest, image_manifest, stage_roles
from .guard import Guard
from .history import History
from .locks import ProjectLock
from .packer_output import BuildState, parse
from .plan import ImagePlan, assess, cached_start, layered, load_state, save_state
from .project import Project, ResolvedImage
from .requirements import install_requirements
from .runner import INSTALL_HINTS, run
from .tags import GitInfo, git_info, resolve_tags
from .tools import (
    community_docker_installed,
    docker_client,
    mitogen_strategy_dir,
    packer_version,
    require,
)

STATE_DIR = ".rolecast"
CANDIDATE_REPOSITORY = "rolecast-candidate"
FINGERPRINT_PLACEHOLDER = "unset"  # what `rolecast render` shows before a build


@dataclass(frozen=True)
class Event:
    """A change in one image's build, for whatever shows progress."""

    image: str
    phase: str
    message: str = ""
    role: str | None = None
    role_index: int | None = None
    role_count: int | None = None
    task: str | None = None
    line: str | None = None


@dataclass
class TaskTiming:
    image: str
    role: str | None
    task: str
    seconds: float


@dataclass
class ImageResult:
    name: str
    result: str  # built | failed | skipped
    tags: list[str] = field(default_factory=list)
    image_id: str | None = None
    size: int | None = None
    seconds: float = 0.0
    log: str | None = None
    connection: str | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    fingerprint: str | None = None
    stages_run: list[str] = field(default_factory=list)
    stages_reused: list[str] = field(default_factory=list)
    stages_pulled: list[str] = field(default_factory=list)
    pushed: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.result,
            "fingerprint": self.fingerprint,
            "stages_run": self.stages_run,
            "stages_reused": self.stages_reused,
            "stages_pulled": self.stages_pulled,
            "pushed": self.pushed,
            "tags": self.tags,
            "image_id": self.image_id,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "log": self.log,
            "connection": self.connection,
            "notes": self.notes,
            "error": self.error,
        }


@dataclass
class BuildReport:
    images: list[ImageResult] = field(default_factory=list)
    tasks: list[TaskTiming] = field(default_factory=list)

    def slowest(self, count: int = 5) -> list[TaskTiming]:
        return sorted(self.tasks, key=lambda t: t.seconds, reverse=True)[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": [i.as_dict() for i in self.images],
            "slowest_tasks": [
                {"image": t.image, "role": t.role, "task": t.task, "seconds": round(t.seconds, 3)}
                for t in self.slowest()
            ],
        }


@dataclass
class BuildOptions:
    verbose: bool = False
    version: str | None = None
    timeout: float = 7200.0
    connection: str | None = None
    vault_arguments: tuple[str, ...] = ()
    idempotence: bool = False
    no_cache: bool = False  # rebuild every selected image from its parent
    force: tuple[str, ...] = ()  # images to rebuild from their parent, fresh or not
    jobs: int = 1
    keep_going: bool = True
    tags: tuple[str, ...] = ()  # tag templates added to every image built (--tag)
    push: bool = False  # push every image built or kept fresh (besides `push: true` ones)
    cache_from: str | None = None  # a registry repository to look for stages in
    cache_to: str | None = None  # a registry repository to push stages to


OnEvent = Callable[[Event], None]


@dataclass(frozen=True)
class Held:
    """What a build holds of its image: the lock's descriptor (its Packer inherits it) and
    the notes on what a killed earlier build had left and was cleaned up."""

    lock_fd: int | None = None
    recovered: tuple[str, ...] = ()


def ansible_playbook() -> str:
    """The ansible-playbook of this installation, so Packer runs the Ansible Rolecast has."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise ToolMissingError(INSTALL_HINTS["ansible-playbook"])
    return found


def vault_arguments(password_files: list[Path], vault_ids: list[str]) -> tuple[str, ...]:
    """ansible-playbook arguments naming vault secrets by path; a missing file is bad input."""
    args: list[str] = []
    for path in password_files:
        if not path.is_file():
            raise UsageError(f"--vault-password-file {path}: no such file")
        args.append(f"--vault-password-file={path.resolve()}")
    for vault_id in vault_ids:
        label, sep, source = vault_id.rpartition("@")
        if not sep:
            label, source = "", vault_id
        if source == "prompt":
            raise UsageError(
                f"--vault-id {vault_id}: a build cannot prompt; give a password file or script"
            )
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"--vault-id {vault_id}: no such file {source}")
        args.append(f"--vault-id={label + '@' if label else ''}{path.resolve()}")
    return tuple(args)


def choose_connection(wanted: str) -> tuple[str, Path | None]:
    """The Ansible connection to use; `auto` takes the fastest one available here."""
    strategy = mitogen_strategy_dir()
    if wanted == "mitogen" and strategy is None:
        raise ToolMissingError("connection mitogen: mitogen is not installed (pip install mitogen)")
    if wanted == "docker" and not community_docker_installed():
        raise ToolMissingError(
            "connection docker: the community.docker collection is not installed "
            "(ansible-galaxy collection install community.docker), or use connection: mitogen"
        )
    if wanted == "auto":
        if strategy is not None:
            return "mitogen", strategy
        return ("docker", None) if community_docker_installed() else ("proxy", None)
    return wanted, strategy if wanted == "mitogen" else None


class Builder:
    """Builds the images of one project, in dependency order, one Packer run each."""

    def __init__(self, project: Project, options: BuildOptions, on_event: OnEvent) -> None:
        self.project = project
        self.options = options
        self.on_event = on_event
        self.root = project.root.resolve()
        self.state = self.root / STATE_DIR
        self.client: Any = None
        self.packer: tuple[int, ...] = ()
        self.git: GitInfo = GitInfo()
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self._bases_done: set[str] = set()
        self._bases_lock = threading.Lock()
        self.cancel = threading.Event()
        self.history = History(self.root)
        digest = hashlib.sha256(f"{socket.gethostname()}:{self.root}".encode()).hexdigest()
        self.project_id = digest[:16]  # labels containers, to find those of a killed build

    # -- preparation -------------------------------------------------------------------

    def check_tools(self) -> None:
        require("packer")
        require("docker")  # Packer's builder and the mitogen connection run the CLI
        version = packer_version()
        if version is None:
            raise ToolMissingError("packer does not report its version: reinstall it")
        self.packer = version
        self.client = docker_client()
        self.git = git_info(self.root)

    def install_requirements(self) -> None:
        if self.project.requirements is None:
            return
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with self.lock("requirements", "the requirements", "requirements"):
            self._install_requirements(logs)

    def _install_requirements(self, logs: Path) -> None:
        assert self.project.requirements is not None
        self.emit("requirements", "installing", self._rel(self.project.requirements))
        resolved = install_requirements(
            self.project.requirements,
            self.project.galaxy,
            galaxy_tool=str(Path(ansible_playbook()).parent / "ansible-galaxy"),
            log=logs / f"requirements-{self.now:%Y%m%dT%H%M%SZ}.log",
            timeout=self.options.timeout,
            shown=self._rel,
        )
        self.emit(
            "requirements",
            "installed",
            ", ".join(f"{name} {version}" for name, version in sorted(resolved.items())),
        )

    def resolved_tags(
        self, image: ResolvedImage, fingerprint: str | None = None, moving: set[str] | None = None
    ) -> list[str]:
        """The image's tags for this build; before its fingerprint is known, `{{ fingerprint }}`
        resolves to its last build's (or a placeholder), so that every tag is checked early."""
        if fingerprint is None:
            state = load_state(self.project, image)
            fingerprint = str(state.get("fingerprint")) if state else "0" * 64
        extra = [f"{t}-{image.variant}" if image.variant else t for t in self.options.tags]
        return resolve_tags(
            [*image.tags, *extra],
            version=self.options.version,
            git=self.git,
            now=self.now,
            image=image.name,
            fingerprint=fingerprint,
            moving=moving,
        )

    def parent_reference(self, image: ResolvedImage) -> str:
        if image.parent_kind == "image":
            parent = self.project.images[image.parent]
            return f"{parent.repository}:{self.resolved_tags(parent)[0]}"
        if image.parent_kind == "base":
            return self.project.base_reference(image.parent)
        return image.parent

    def ensure_parent(self, image: ResolvedImage, log: Path) -> str:
        reference = self.parent_reference(image)
        if image.parent_kind == "base":
            with (
                self._bases_lock,  # images built in parallel share their base
                self.lock(f"base-{image.parent}", f"base {image.parent}", image.name),
            ):
                if image.parent not in self._bases_done:
                    make_base(
                        self.client,
                        image.parent,
                        self.project.bases[image.parent],
                        reference,
                        say=lambda text: self.emit(image.name, "base image", text),
                        log_file=log,
                    )
                    self._bases_done.add(image.parent)
        if image_exists(self.client, reference):
            return reference
        if image.parent_kind == "image":
            raise BuildFailedError(
                f"image {image.name}: its parent {reference} does not exist; "
                f"build {image.parent} first (rolecast build {image.parent})"
            )
        from docker.errors import DockerException

        self.emit(image.name, "pulling parent image", reference)
        try:
            self.client.images.pull(reference)
        except (DockerException, RequestException) as exc:
            reason = getattr(exc, "explanation", None) or str(exc).splitlines()[0]
            raise BuildFailedError(
                f"image {image.name}: base image {reference} is not present and cannot be "
                f"pulled ({str(reason)[:200]}); load it with `docker load`, or define it "
                "under `bases:` to make it with debootstrap"
            ) from None
        return reference

    def parent_config(self, reference: str) -> render.ParentConfig:
        config = self.client.images.get(reference).attrs.get("Config") or {}
        return render.ParentConfig(
            entrypoint=config.get("Entrypoint") or None,
            cmd=config.get("Cmd") or None,
            user=config.get("User") or "",
        )

    def labels(self, image: ResolvedImage, tags: list[str]) -> dict[str, str]:
        spec = self.project.loaded.spec
        labels: dict[str, str] = {
            "org.opencontainers.image.title": image.spec_name,
            "org.opencontainers.image.version": self.options.version or tags[0],
            "org.opencontainers.image.created": self.now.isoformat().replace("+00:00", "Z"),
        }
        if image.spec.description:
            labels["org.opencontainers.image.description"] = image.spec.description
        if self.git.sha:
            labels["org.opencontainers.image.revision"] = self.git.sha
        if self.git.remote:
            labels["org.opencontainers.image.source"] = self.git.remote
        labels |= {
            "io.rolecast.version": __version__,
            "io.rolecast.roles": ",".join(r.name for r in image.role_closure),
        }
        if image.variant is not None:
            labels["io.rolecast.variant"] = image.variant
        resolved = self.project.galaxy / "resolved.json"
        if self.project.requirements is not None and resolved.is_file():
            versions = json.loads(resolved.read_text(encoding="utf-8"))
            labels["io.rolecast.requirements"] = ",".join(
                f"{name}={version}" for name, version in sorted(versions.items())
            )
        if image.playbook is not None:
            labels["io.rolecast.playbook"] = str(image.playbook.relative_to(self.root))
        labels |= dict(spec.defaults.labels)
        labels |= dict(image.spec.labels)
        labels |= dict(image.spec.config.labels)
        return labels

    def render_input(
        self,
        image: ResolvedImage,
        *,
        build_id: str,
        parent: str,
        parent_config: render.ParentConfig,
        build_dir: Path,
        fingerprint: str = FINGERPRINT_PLACEHOLDER,
    ) -> render.RenderInput:
        spec = self.project.loaded.spec
        connection, strategy = choose_connection(
            self.options.connection or image.spec.connection or spec.defaults.connection
        )
        known = fingerprint if fingerprint != FINGERPRINT_PLACEHOLDER else None
        tags = self.resolved_tags(image, known)
        cfg = self.root / "ansible.cfg"
        return render.RenderInput(
            name=image.slug,
            parent=parent,
            parent_is_local=True,
            parent_config=parent_config,
            config=image.spec.config,
            labels=self.labels(image, tags) | {"io.rolecast.fingerprint": fingerprint},
            repository=image.repository,
            tags=tags,
            build_id=build_id,
            playbook=image.playbook or build_dir / "playbook.yml",
            extra_vars_file=build_dir / "vars.json",
            connection=connection,  # type: ignore[arg-type]
            packer_version=self.packer,
            groups=list(image.spec.groups),
            inventory=image.inventory,
            host_alias=image.host or render.HOST_ALIAS_PREFIX + image.slug,
            vault_arguments=list(self.options.vault_arguments),
            roles_paths=list(self.project.roles_paths),
            collections_paths=list(self.project.collections_paths),
            ansible_config=cfg if cfg.is_file() else None,
            mitogen_strategy_dir=strategy,
            verbose=self.options.verbose,
            ansible_playbook=ansible_playbook(),
            apt_cache=image.spec.config.cleanup,
            project_id=self.project_id,
        )

    def write_inputs(
        self,
        image: ResolvedImage,
        inp: render.RenderInput,
        build_dir: Path,
        items: list[render.PlayItem],
    ) -> Path:
        """Write the template and what it reads into `.rolecast/build/<image>/`."""
        build_dir.mkdir(parents=True, exist_ok=True)
        if image.playbook is None:
            stage_role = build_dir / "roles" / render.STAGE_ROLE
            (stage_role / "meta").mkdir(parents=True, exist_ok=True)
            (stage_role / "tasks").mkdir(parents=True, exist_ok=True)
            (stage_role / "meta" / "main.yml").write_text(render.STAGE_ROLE_META, encoding="utf-8")
            (stage_role / "tasks" / "main.yml").write_text(
                render.STAGE_ROLE_TASKS, encoding="utf-8"
            )
            (build_dir / "playbook.yml").write_text(
                render.generated_playbook(image.name, inp.host_alias, items),
                encoding="utf-8",
            )
            # The idempotence gate applies every role again, whatever came from the cache.
            every_role = [(ref.role, dict(ref.vars)) for ref in image.roles]
            (build_dir / "gate-playbook.yml").write_text(
                render.generated_playbook(image.name, inp.host_alias, list(every_role)),
                encoding="utf-8",
            )
        extra_vars = {"image_build": True, **image.spec.vars}
        (build_dir / "vars.json").write_text(json.dumps(extra_vars, indent=2), encoding="utf-8")
        path = build_dir / "template.pkr.json"
        path.write_text(render.dumps(render.template(inp)), encoding="utf-8")
        return path

    # -- running -----------------------------------------------------------------------

    def emit(self, image: str, phase: str, message: str = "", **extra: Any) -> None:
        self.on_event(Event(image=image, phase=phase, message=message, **extra))

    def build(self, names: list[str]) -> BuildReport:
        """Build the named images (and what they are built from): parents before children,
        independent images in parallel, up to `jobs` at once."""
        order = self.project.select(names)
        for name in order:
            self.resolved_tags(self.project.images[name])  # bad tags fail before any work
        self.project.select(list(self.options.force))  # an unknown name is an input error
        self.check_tools()
        self.install_requirements()
        report = BuildReport()
        self.bases_log.parent.mkdir(parents=True, exist_ok=True)
        outcome: dict[str, str] = {}
        failures: list[BuildFailedError] = []
        interrupted: list[BaseException] = []
        pending = list(order)
        running: dict[Future[None], str] = {}
        jobs = max(1, self.options.jobs)

        def skip(name: str, why: str) -> None:
            pending.remove(name)
            outcome[name] = "skipped"
            report.images.append(ImageResult(name=name, result="skipped", error=why))
            self.emit(name, "skipped", why)

        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="rolecast-build") as pool:
            while pending or running:
                for name in list(pending):
                    image = self.project.images[name]
                    parent = image.parent if image.parent_kind == "image" else None
                    if failures and not self.options.keep_going:
                        skip(name, "not started: an earlier image failed (--fail-fast)")
                    elif interrupted:
                        skip(name, "not started: the build was interrupted")
                    elif parent in outcome and outcome[parent] in ("failed", "skipped"):
                        skip(name, f"{parent} {outcome[parent]}")
                    elif (parent is None or parent in outcome) and len(running) < jobs:
                        pending.remove(name)
                        running[pool.submit(self.build_image, name, report)] = name
                if not running:
                    continue
                try:
                    done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                except KeyboardInterrupt as exc:
                    self.cancel.set()  # every running Packer gets SIGINT and cleans up
                    interrupted.append(exc)
                    continue
                for future in done:
                    name = running.pop(future)
                    try:
                        future.result()
                        outcome[name] = "built"
                    except BuildFailedError as exc:
                        outcome[name] = "failed"
                        failures.append(exc)
                        report.images.append(
                            ImageResult(name=name, result="failed", error=str(exc))
                        )
                    except (InterruptedBuildError, KeyboardInterrupt) as exc:
                        outcome[name] = "failed"
                        interrupted.append(exc)
        # Reported in build order, whichever finished first.
        report.images.sort(key=lambda item: order.index(item.name))
        if interrupted:
            first = next((e for e in interrupted if isinstance(e, InterruptedBuildError)), None)
            raise first or InterruptedBuildError(
                "build interrupted: no build container is left and no tag was moved"
            )
        if failures:
            error = failures[0]
            if len(failures) > 1:
                error = BuildFailedError(
                    f"{len(failures)} images failed:\n" + "\n".join(f"  {f}" for f in failures)
                )
            error.report = report  # type: ignore[attr-defined]
            raise error
        return report

    def lock(self, name: str, what: str, image: str) -> ProjectLock:
        return ProjectLock(
            self.root, name, what, lambda text: self.emit(image, "lock", text), self.cancel
        )

    def build_image(self, name: str, report: BuildReport) -> None:
        """One image, while holding its lock: what a killed build of it left is cleaned up
        first; fresh images are kept; others resume from their deepest cached stage."""
        image = self.project.images[name]
        with self.lock(f"image-{image.slug}", f"image {image.name}", image.name) as lock:
            self._build_image(image, report, Held(lock.fd, tuple(self.recover(image))))

    def recover(self, image: ResolvedImage) -> list[str]:
        """Under the image's lock no other build of it runs: a build container of it, a
        candidate tag or an unfinished history record is what a killed build left."""
        from docker.errors import DockerException

        notes: list[str] = []
        prefix = render.container_prefix(self.project_id, image.slug)
        try:
            for container in self.client.containers.list(all=True, filters={"name": prefix}):
                if not container.name.startswith(prefix):
                    continue  # the name filter matches anywhere in the name
                build = container.name[len(prefix) :]
                container.remove(force=True)
                notes.append(
                    f"removed container {container.short_id} left by build {build}, "
                    "which did not finish"
                )
            for found in self.client.images.list(name=f"{CANDIDATE_REPOSITORY}/{image.slug}"):
                for tag in found.tags:
                    self._untag(tag)
                    notes.append(f"removed the unchecked candidate {tag} of a killed build")
        except (DockerException, RequestException) as exc:
            notes.append(f"could not look for containers of killed builds: {exc}")
        for record in self.history.unfinished(image.name):
            when = dt.datetime.fromtimestamp(record.started, dt.UTC).strftime("%H:%M:%S")
            self.history.finish(
                record.id,
                "interrupted",
                error=f"rolecast (pid {record.pid}) stopped before the build finished",
            )
            notes.append(
                f"the build started at {when} UTC by pid {record.pid} did not finish; "
                "its record now says interrupted"
            )
        for note in notes:
            self.emit(image.name, "recovered", note)
        return notes

    def _build_image(self, image: ResolvedImage, report: BuildReport, held: Held) -> None:
        name = image.name
        parent = self.ensure_parent(image, self.bases_log)
        parent_id = str(self.client.images.get(parent).id)
        forced = name in self.options.force or image.spec_name in self.options.force
        rebuild = self.options.no_cache or forced
        assessed, manifest = assess(
            self.project, image, parent_id, True, self.client, use_cache=not rebuild
        )
        if assessed.status == "fresh" and not rebuild:
            self.keep_fresh(image, assessed, manifest, report, held.recovered)
            return
        self.emit(image.name, "planned", f"{assessed.status}: {assessed.reason}")
        self.build_one(image, report, parent, manifest, use_cache=not rebuild, held=held)

    @property
    def bases_log(self) -> Path:
        return self.state / "logs" / f"bases-{self.now:%Y%m%dT%H%M%SZ}.log"

    def keep_fresh(
        self,
        image: ResolvedImage,
        assessed: ImagePlan,
        manifest: Manifest,
        report: BuildReport,
        recovered: tuple[str, ...] = (),
    ) -> None:
        """Nothing changed: no container starts; the tags are (re)applied to the last image."""
        assert assessed.image_id is not None
        built = self.client.images.get(assessed.image_id)
        tags = self.resolved_tags(image, manifest.fingerprint)
        for tag in tags:
            built.tag(image.repository, tag)
        names = [s.name for s in manifest.stages]
        full_tags = [f"{image.repository}:{t}" for t in tags]
        record = self.history.start(image.name, manifest.fingerprint, names)
        self.history.finish(record, "fresh", image_id=assessed.image_id, tags=full_tags)
        pushed = self.push(image, manifest.fingerprint)
        if pushed:
            self.history.set_pushed(record, pushed)
        notes = [*recovered, "fresh: nothing changed since the last build"]
        if self.options.cache_to and layered(self.project, image):
            self.push_stages(image, manifest, notes)
        report.images.append(
            ImageResult(
                name=image.name,
                result="fresh",
                tags=full_tags,
                image_id=assessed.image_id,
                size=built.attrs.get("Size"),
                notes=notes,
                fingerprint=manifest.fingerprint,
                stages_reused=names,
                pushed=pushed,
            )
        )
        self.emit(image.name, "done", f"fresh, {assessed.image_id[7:19]} {' '.join(tags)}")

    def play_items(
        self, image: ResolvedImage, manifest: Manifest, start: int
    ) -> list[render.PlayItem]:
        """What the generated playbook runs: the roles after stage `start`, and, when the
        image is layered, a stage commit after each."""
        roles = [(ref.role, dict(ref.vars)) for ref, _ in stage_roles(image)]
        if not layered(self.project, image):
            return list(roles)
        stages = manifest.stages
        items: list[render.PlayItem] = []
        if start < 0:
            items.append(render.StageCommit(stages[0].name, self.cache_tag(image, 0, manifest)))
        for index, role in enumerate(roles, start=1):
            if index > start:
                items.append(role)
                tag = self.cache_tag(image, index, manifest)
                items.append(render.StageCommit(stages[index].name, tag))
        return items

    @staticmethod
    def cache_tag(image: ResolvedImage, index: int, manifest: Manifest) -> str:
        return render.cache_tag(image.slug, manifest.stages[index].fingerprint)

    def build_one(
        self,
        image: ResolvedImage,
        report: BuildReport,
        parent: str,
        manifest: Manifest,
        use_cache: bool = True,
        held: Held | None = None,
    ) -> ImageResult:
        held = held or Held()
        started = time.monotonic()
        build_id = uuid.uuid4().hex[:12]
        stamp = self.now.strftime("%Y%m%dT%H%M%SZ")
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{image.slug}-{stamp}-{build_id}.log"
        build_dir = self.state / "build" / image.slug
        start = cached_start(self.project, image, manifest, self.client) if use_cache else -1
        pulled: list[str] = []
        if use_cache and self.options.cache_from and layered(self.project, image):
            start, pulled = self.pull_stages(image, manifest, start)
        names = [s.name for s in manifest.stages]
        reused, to_run = names[: start + 1], names[start + 1 :]
        source = self.cache_tag(image, start, manifest) if start >= 0 else parent
        if reused:
            running = ", ".join(to_run)
            self.emit(image.name, "cache", f"reusing {', '.join(reused)}; running {running}")
        self.emit(image.name, "starting", f"log: {self._rel(log)}")
        items = self.play_items(image, manifest, start)
        inp = self.render_input(
            image,
            build_id=build_id,
            parent=source,
            parent_config=self.parent_config(parent),
            build_dir=build_dir,
            fingerprint=manifest.fingerprint,
        )
        inp = replace(
            inp,
            run_ansible=image.playbook is not None or bool(items),
            stage_cache=any(isinstance(i, render.StageCommit) for i in items),
        )
        gated = self.gated(image)
        final_tags = list(inp.tags)
        candidate = f"{CANDIDATE_REPOSITORY}/{image.slug}:{build_id}"
        if gated:
            # Packer tags a private candidate; the real tags move only after the gates.
            inp = replace(inp, repository=candidate.rsplit(":", 1)[0], tags=[build_id])
        template = self.write_inputs(image, inp, build_dir, items)
        # Stage images this build will commit again (under --no-cache or --force): the old
        # ones are removed after the build if nothing uses them, deepest first.
        replaced = [
            found
            for item in reversed(items)
            if isinstance(item, render.StageCommit)
            and (found := self._image_id(item.tag)) is not None
        ]
        record = self.history.start(image.name, manifest.fingerprint, reused)
        state = BuildState()
        role_names = [r.name for r in image.role_closure]
        roles_run: list[str] = []
        task_started: list[Any] = []

        def close_task() -> None:
            if task_started:
                role, task, at = task_started.pop()
                report.tasks.append(TaskTiming(image.name, role, task, time.monotonic() - at))

        def finish(result: str, error: str | None = None, image_id: str | None = None) -> None:
            self.history.finish(
                record,
                result,
                stages_run=to_run if result == "built" else [],
                roles_run=roles_run,
                image_id=image_id,
                tags=[f"{image.repository}:{t}" for t in final_tags] if image_id else [],
                log=self._rel(log),
                error=error,
            )

        with log.open("a", encoding="utf-8", buffering=1) as sink:

            def on_line(raw: str) -> None:
                line = parse(raw)
                sink.write(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {line.text}\n")
                notes = len(state.notes)
                phase = state.feed(line)
                if len(state.notes) > notes:
                    self.emit(image.name, "note", state.notes[-1])
                if phase == "task":
                    close_task()
                    task_started.append((state.role, state.task, time.monotonic()))
                    if state.role and state.role != render.STAGE_ROLE:
                        if state.role not in roles_run:
                            roles_run.append(state.role)
                    index = role_names.index(state.role) + 1 if state.role in role_names else None
                    self.emit(
                        image.name,
                        "task",
                        role=state.role,
                        role_index=index,
                        role_count=len(role_names) or None,
                        task=state.task,
                    )
                elif phase is not None:
                    if phase != "ansible":
                        close_task()
                    self.emit(image.name, phase)
                if self.options.verbose and line.text.strip():
                    self.emit(image.name, "output", line=line.text)

            # Registry credentials are Rolecast's, for pushes: Packer and Ansible never see them.
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROLECAST_REGISTRY_")}
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
            env["CHECKPOINT_DISABLE"] = "1"
            env["PACKER_NO_COLOR"] = "1"
            try:
                run(
                    ["packer", "build", "-color=false", template.name],
                    timeout=self.options.timeout,
                    on_line=on_line,
                    env=env,
                    cwd=build_dir,
                    what=f"packer build of {image.name}",
                    cancel=self.cancel,
                    # Packer holds the image's lock too: if rolecast is killed, the next
                    # build waits until this Packer has stopped and removed its container.
                    pass_fds=() if held.lock_fd is None else (held.lock_fd,),
                    # If rolecast dies, the guard logs what Packer still says and removes
                    # the build container.
                    guard=Guard(
                        log=log,
                        cleanup=(
                            "docker",
                            "rm",
                            "-f",
                            render.container_name(self.project_id, image.slug, build_id),
                        ),
                    ),
                )
            except KeyboardInterrupt:
                self._remove_leftovers(build_id, state)
                finish("interrupted", "interrupted")
                raise InterruptedBuildError(
                    f"build of {image.name} interrupted: its build container was removed "
                    "and no tag was created or moved"
                ) from None
            except CommandTimeoutError as exc:
                self._remove_leftovers(build_id, state)
                message = f"image {image.name}: {exc}; log: {self._rel(log)}"
                finish("failed", message)
                raise BuildFailedError(message) from None
            except CommandFailedError as exc:
                self._remove_leftovers(build_id, state)
                message = self._failure_message(image, state, log, exc.returncode)
                finish("failed", message)
                raise BuildFailedError(message) from None
            finally:
                close_task()
        self._remove_leftovers(build_id, state, image_too=False)

        if gated and state.image_id:
            try:
                self.run_gates(image, inp, state.image_id, build_id, candidate, final_tags, state)
            except BuildFailedError as exc:
                finish("failed", str(exc))
                raise
            except BaseException:
                finish("interrupted", "interrupted")
                raise
        tags = [f"{image.repository}:{t}" for t in final_tags]
        image_id = state.image_id
        size = None
        if image_id:
            size = self.client.images.get(image_id).attrs.get("Size")
        if reused:
            state.notes.append(f"cache: reused {', '.join(reused)}")
        if pulled:
            state.notes.append(f"cache: pulled {', '.join(pulled)} from {self.options.cache_from}")
        if self.options.cache_to and layered(self.project, image):
            self.push_stages(image, manifest, state.notes)
        result = ImageResult(
            name=image.name,
            result="built",
            tags=tags,
            image_id=image_id,
            size=size,
            seconds=time.monotonic() - started,
            log=self._rel(log),
            connection=inp.connection,
            notes=[*held.recovered, *state.notes],
            fingerprint=manifest.fingerprint,
            stages_run=to_run,
            stages_reused=reused,
            stages_pulled=pulled,
        )
        if image_id:
            previous = load_state(self.project, image)
            save_state(self.project, image, manifest, image_id, tags)
            if previous and previous.get("image_id") != image_id:
                self._drop_if_unused(str(previous.get("image_id")))
        for old in replaced:
            self._drop_if_unused(old)
        finish("built", image_id=image_id)
        result.pushed = self.push(image, manifest.fingerprint)
        if result.pushed:
            self.history.set_pushed(record, result.pushed)
        report.images.append(result)
        self.emit(image.name, "done", f"{image_id[7:19] if image_id else '?'} {' '.join(tags)}")
        return result

    def push(
        self, image: ResolvedImage, fingerprint: str, force: bool = False
    ) -> list[dict[str, str]]:
        """Push the image's tags when asked (--push, `push: true`); moving tags last."""
        from .publish import push_image

        if not (force or self.options.push or image.spec.push):
            return []
        moving: set[str] = set()
        tags = self.resolved_tags(image, fingerprint, moving)
        self.emit(image.name, "pushing", f"{image.repository} ({', '.join(tags)})")
        pushed = push_image(
            self.client,
            image.repository,
            tags,
            moving,
            say=lambda text: self.emit(image.name, "push", text),
        )
        return [p.as_dict() for p in pushed]

    def remote_stage(self, repository: str, image: ResolvedImage, fingerprint: str) -> str:
        return f"{repository}:{image.slug}-{fingerprint[:32]}"

    def pull_stages(
        self, image: ResolvedImage, manifest: Manifest, start: int
    ) -> tuple[int, list[str]]:
        """The deepest stage beyond `start` that the shared cache has, pulled and tagged as a
        local stage; (new start, names of the stages it brings)."""
        from docker.errors import DockerException

        from .publish import credentials

        assert self.options.cache_from is not None
        auth = credentials()
        for index in reversed(range(start + 1, len(manifest.stages) - 1)):
            remote = self.remote_stage(
                self.options.cache_from, image, manifest.stages[index].fingerprint
            )
            try:
                self.client.images.get_registry_data(remote, auth_config=auth)
            except (DockerException, RequestException):
                continue  # not there (or the registry cannot say): the next stage down
            self.emit(image.name, "cache", f"pulling {remote}")
            try:
                repository, tag = remote.rsplit(":", 1)
                found = self.client.images.pull(repository, tag=tag, auth_config=auth)
            except (DockerException, RequestException) as exc:
                self.emit(image.name, "note", f"cache: could not pull {remote}: {exc}")
                return start, []
            local_repository, local_tag = self.cache_tag(image, index, manifest).rsplit(":", 1)
            found.tag(local_repository, local_tag)
            return index, [s.name for s in manifest.stages[start + 1 : index + 1]]
        return start, []

    def push_stages(self, image: ResolvedImage, manifest: Manifest, notes: list[str]) -> None:
        """Send every stage of the current fingerprints that is here to the shared cache.
        A failure is a note, not a failed build: the cache only saves time."""
        from .errors import RolecastError
        from .publish import credentials, push_one

        assert self.options.cache_to is not None
        auth = credentials()
        sent = []
        for index, stage in enumerate(manifest.stages[:-1]):
            local = self.cache_tag(image, index, manifest)
            if not image_exists(self.client, local):
                continue
            remote = self.remote_stage(self.options.cache_to, image, stage.fingerprint)
            repository, tag = remote.rsplit(":", 1)
            self.client.images.get(local).tag(repository, tag)
            try:
                push_one(
                    self.client,
                    repository,
                    tag,
                    auth=auth,
                    say=lambda text: self.emit(image.name, "push", text),
                )
                sent.append(stage.name)
            except RolecastError as exc:
                notes.append(f"cache: stages not shared: {exc}")
                return
            finally:
                self._untag(remote)
        if sent:
            notes.append(f"cache: shared {', '.join(sent)} to {self.options.cache_to}")

    def push_built(self, names: list[str]) -> BuildReport:
        """`rolecast push`: push the last build of each named image, tags as they resolve now."""
        from docker.errors import ImageNotFound

        self.git = git_info(self.root)
        report = BuildReport()
        selected = self.project.select(names)
        for name in selected:
            self.resolved_tags(self.project.images[name])  # bad tags fail before any push
        self.client = docker_client()
        for name in selected:
            image = self.project.images[name]
            state = load_state(self.project, image)
            try:
                built = self.client.images.get(str(state["image_id"])) if state else None
            except ImageNotFound:
                built = None
            if state is None or built is None:
                raise BuildFailedError(
                    f"image {name}: no build of it in this Docker engine; "
                    f"rolecast build {name} first"
                )
            fingerprint = str(state["fingerprint"])
            tags = self.resolved_tags(image, fingerprint)
            for tag in tags:
                built.tag(image.repository, tag)
            pushed = self.push(image, fingerprint, force=True)
            report.images.append(
                ImageResult(
                    name=name,
                    result="pushed",
                    tags=[f"{image.repository}:{t}" for t in tags],
                    image_id=str(built.id),
                    fingerprint=fingerprint,
                    pushed=pushed,
                )
            )
            self.emit(name, "done", f"pushed {len(pushed)} tags")
        return report

    @staticmethod
    def gate_playbook(image: ResolvedImage, inp: render.RenderInput) -> Path:
        """The playbook a gate re-applies: the image's own, or all its roles (never only
        the roles a resumed build ran)."""
        if image.playbook is not None:
            return inp.playbook
        return inp.playbook.with_name("gate-playbook.yml")

    def gated(self, image: ResolvedImage) -> bool:
        return image.spec.verify is not None or image.spec.idempotence or self.options.idempotence

    def gate_setup(self, inp: render.RenderInput) -> gates.AnsibleSetup | None:
        """Ansible for a gate container: the build's inventory, vars and vault; no proxy."""
        connection, strategy = inp.connection, inp.mitogen_strategy_dir
        if connection == "proxy":
            strategy = mitogen_strategy_dir()
            if strategy is not None:
                connection = "mitogen"
            elif community_docker_installed():
                connection = "docker"
            else:
                return None
        gate = replace(inp, connection=connection, mitogen_strategy_dir=strategy)
        return gates.AnsibleSetup(
            alias=inp.host_alias,
            groups=list(inp.groups),
            inventory=inp.inventory,
            env=dict(e.split("=", 1) for e in render.ansible_env(gate)),
            extra_vars=gates.extra_vars_of(inp.extra_vars_file),
            vault_arguments=list(inp.vault_arguments),
            ansible_playbook=inp.ansible_playbook,
            plugin="docker" if connection == "mitogen" else "community.docker.docker",
        )

    def run_gates(
        self,
        image: ResolvedImage,
        inp: render.RenderInput,
        image_id: str,
        build_id: str,
        candidate: str,
        final_tags: list[str],
        state: BuildState,
    ) -> None:
        """Idempotence, then verify; tags move only when both pass."""
        setup = self.gate_setup(inp)
        named = render.container_name(self.project_id, image.slug, build_id)
        try:
            if image.spec.idempotence or self.options.idempotence:
                self.emit(image.name, "idempotence check")
                gates.idempotence(
                    self.client,
                    image,
                    image_id,
                    build_id,
                    setup,
                    self.gate_playbook(image, inp),
                    self.root,
                    timeout=self.options.timeout,
                    container_name=f"{named}-idempotence",
                )
                state.notes.append("idempotence: no task changed on a second run")
            if image.spec.verify is not None:
                self.emit(image.name, "verifying")
                gates.verify(
                    self.client,
                    image,
                    image_id,
                    build_id,
                    setup,
                    self.root,
                    timeout=self.options.timeout,
                    container_name=f"{named}-verify",
                )
                state.notes.append("verify: passed")
            if self.cancel.is_set():
                raise KeyboardInterrupt  # interrupted while the gates ran: no tag moves
        except BuildFailedError as exc:
            kept = f"{image.repository}:{final_tags[0]}-failed"
            self.client.images.get(image_id).tag(image.repository, f"{final_tags[0]}-failed")
            self._untag(candidate)
            raise BuildFailedError(
                f"{exc}; no tag was moved; the image is kept as {kept}"
            ) from None
        except BaseException:
            self._remove_leftovers(build_id, state)
            self._untag(candidate)
            raise
        self.emit(image.name, "tagging")
        built = self.client.images.get(image_id)
        for tag in final_tags:
            built.tag(image.repository, tag)
        self._untag(candidate)

    def _image_id(self, reference: str) -> str | None:
        from docker.errors import DockerException

        try:
            return str(self.client.images.get(reference).id)
        except (DockerException, RequestException):
            return None

    def _drop_if_unused(self, image_id: str) -> None:
        """Remove an image a rebuild replaced, when no tag, container or child image uses
        it; the engine refuses otherwise, and that refusal is the check."""
        from docker.errors import DockerException

        try:
            if self.client.images.get(image_id).tags:
                return
            self.client.images.remove(image_id, force=False, noprune=False)
        except (DockerException, RequestException):
            pass

    def _engine_answers(self) -> bool:
        from docker.errors import DockerException

        try:
            return bool(self.client.ping())
        except (DockerException, RequestException, OSError):
            return False

    def _untag(self, reference: str) -> None:
        from docker.errors import DockerException

        try:
            self.client.images.remove(reference)
        except (DockerException, RequestException):
            pass

    def _failure_message(
        self, image: ResolvedImage, state: BuildState, log: Path, returncode: int = 1
    ) -> str:
        where = f"; log: {self._rel(log)}"
        said = [*state.packer_errors, state.ansible_error or ""]
        if state.failure is not None:
            said.append(state.failure.message)
        lost = any("Cannot connect to the Docker daemon" in text for text in said)
        if lost or not self._engine_answers():
            host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            return (
                f"image {image.name}: the Docker engine ({host}) stopped answering during "
                "the build; no tag was created or moved, the last good image is kept. Start "
                f"the engine and build again (what this build left is removed then){where}"
            )
        if returncode > 128:
            try:
                name = signal.Signals(returncode - 128).name
            except ValueError:
                name = f"signal {returncode - 128}"
            return (
                f"image {image.name}: packer was killed ({name}); its build container was "
                f"removed and no tag was created or moved{where}"
            )
        if state.failure is not None:
            role = f"role {state.failure.role}, " if state.failure.role else ""
            task = state.failure.task or "?"
            return f"image {image.name}: {role}task '{task}' failed: {state.failure.message}{where}"
        if state.ansible_error is not None:
            hint = ""
            if "vault secret" in state.ansible_error:
                hint = "; pass --vault-password-file or --vault-id"
            return f"image {image.name}: ansible-playbook: {state.ansible_error}{hint}{where}"
        errors = [e for e in state.packer_errors if not e.startswith("Build '")]
        detail = errors[0] if errors else (state.packer_errors or ["packer build failed"])[-1]
        return f"image {image.name}: packer: {detail}{where}"

    def _remove_leftovers(self, build_id: str, state: BuildState, image_too: bool = True) -> None:
        """No container of this build survives it; an untagged commit of a failed build neither."""
        from docker.errors import DockerException

        try:
            for container in self.client.containers.list(
                all=True, filters={"label": f"{render.BUILD_LABEL}={build_id}"}
            ):
                container.remove(force=True)
            if image_too and state.image_id and not state.tagged:
                self.client.images.remove(state.image_id, force=False, noprune=False)
        except (DockerException, RequestException):
            pass

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def render_image(project: Project, name: str, options: BuildOptions) -> str:
    """The template `rolecast build` would run for `name`, as text."""
    if name not in project.images:
        variants = [k for k, i in project.images.items() if i.spec_name == name]
        if variants:
            raise UsageError(f"image {name} has variants; render one: {', '.join(variants)}")
        project.select([name])  # raises the "unknown image" error
    builder = Builder(project, options, lambda event: None)
    image = project.images[name]
    builder.packer = packer_version() or (1, 6, 6)
    builder.git = git_info(builder.root)
    reference = builder.parent_reference(image)
    build_dir = builder.state / "build" / image.slug
    parent_config = render.ParentConfig(cmd=["/bin/bash"])
    manifest = image_manifest(project, image, "unknown")
    fingerprint = FINGERPRINT_PLACEHOLDER
    try:
        builder.client = docker_client(timeout=10)
        if image_exists(builder.client, reference):
            parent_config = builder.parent_config(reference)
            parent_id = str(builder.client.images.get(reference).id)
            manifest = image_manifest(project, image, parent_id)
            fingerprint = manifest.fingerprint
        elif image.parent_kind == "external":
            raise UsageError(
                f"image {name}: cannot read the config of {reference} (not present); "
                "pull it first, so that ENTRYPOINT and CMD can be inherited"
            )
        else:
            parent_config = _spec_parent_config(project, image)
    except ToolMissingError:
        parent_config = _spec_parent_config(project, image)
    inp = builder.render_input(
        image,
        build_id="render",
        parent=reference,
        parent_config=parent_config,
        build_dir=build_dir,
        fingerprint=fingerprint,
    )
    items = builder.play_items(image, manifest, -1)  # as a build with no cache runs it
    inp = replace(inp, stage_cache=any(isinstance(i, render.StageCommit) for i in items))
    builder.write_inputs(image, inp, build_dir, items)
    return render.dumps(render.template(inp))


def _spec_parent_config(project: Project, image: ResolvedImage) -> render.ParentConfig:
    """The parent's config as the spec will make it, for rendering before it is built."""
    chain = []
    current = image
    while current.parent_kind == "image":
        current = project.images[current.parent]
        chain.append(current)
    config = render.ParentConfig(cmd=["/bin/bash"])
    for parent in reversed(chain):
        c = parent.spec.config
        config = render.ParentConfig(
            entrypoint=c.entrypoint if c.entrypoint is not None else config.entrypoint,
            cmd=c.cmd if c.cmd is not None else (None if c.entrypoint else config.cmd),
            user=c.user if c.user is not None else config.user,
        )
    return config
