"""The names Rolecast gives what it leaves in an engine, each scoped by the project's identity.

A project's identity is the first 16 hex digits of sha256("HOSTNAME:PROJECT_ROOT"): two
checkouts (two directories, or one path on two machines sharing an engine) are two
projects. Build containers, stage images, gate candidates and apt cache volumes carry it,
so one project's recovery, `cache prune` or apt lock never touches another's. Stages
shared through a registry (`--cache-to`) are named by image and fingerprint only: every
clone of a repository may pull them.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

CACHE_REPOSITORY = "rolecast-cache"
CANDIDATE_REPOSITORY = "rolecast-candidate"
CONTAINER_PREFIX = "rolecast-"
APT_VOLUME_PREFIX = "rolecast-apt-"
FINGERPRINT_LABEL = "io.rolecast.fingerprint"  # on every image built: its final fingerprint
# The host's one volume of unpacked python3-apt packages, shared by every build.
PYTHON_APT_VOLUME = f"{APT_VOLUME_PREFIX}python3-apt"
HOST_ALIAS_PREFIX = "rolecast-"  # the build host's inventory name: rolecast-IMAGE


def host_alias(host: str | None, slug: str) -> str:
    """The build host's inventory name: the spec's `host`, or one of the image's own."""
    return host or HOST_ALIAS_PREFIX + slug


def project_identity(root: Path) -> str:
    text = f"{socket.gethostname()}:{root.resolve()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def container_name(identity: str, slug: str, build_id: str) -> str:
    """The name of a build's container: a later build of the image finds the containers a
    killed build left by it. (Not a label: a container's labels are committed into the image,
    so containers users run from it would carry them too.)"""
    return container_prefix(identity, slug) + build_id


def container_prefix(identity: str, slug: str) -> str:
    return f"{project_containers(identity)}{slug}-"


def project_containers(identity: str) -> str:
    """The prefix of the names of every build container of the project."""
    return f"{CONTAINER_PREFIX}{identity}-"


def stage_repository(identity: str, slug: str) -> str:
    return f"{CACHE_REPOSITORY}/{identity}/{slug}"


def stage_tag(identity: str, slug: str, fingerprint: str) -> str:
    """The local image of one stage: `rolecast-cache/IDENTITY/IMAGE:FINGERPRINT`."""
    return f"{stage_repository(identity, slug)}:{fingerprint[:32]}"


def stage_fingerprint(tag: str) -> str:
    """The fingerprint part (32 hex digits) of a stage's tag."""
    return tag.rpartition(":")[2]


def stage_prefix(identity: str) -> str:
    return f"{CACHE_REPOSITORY}/{identity}/"


def legacy_stage_tag(slug: str, fingerprint: str) -> str:
    """A stage as Rolecast 0.1 named it, before stages were scoped by project."""
    return f"{CACHE_REPOSITORY}/{slug}:{fingerprint[:32]}"


def shared_stage_tag(repository: str, slug: str, fingerprint: str) -> str:
    """A stage in a registry-shared cache: the same name for every clone of the project."""
    return f"{repository}:{slug}-{fingerprint[:32]}"


def candidate_repository(identity: str, slug: str) -> str:
    """Where a gated build's commit waits for its gates, before the real tags move."""
    return f"{CANDIDATE_REPOSITORY}/{identity}/{slug}"


def candidate_pattern(identity: str) -> str:
    """Every candidate repository of the project (Docker's reference filter pattern)."""
    return f"{CANDIDATE_REPOSITORY}/{identity}/*"


PROJECT_LABEL = "io.rolecast.project"
CHECKOUT_LABEL = "io.rolecast.checkout"  # the project's root directory
HOST_LABEL = "io.rolecast.host"


def checkout_labels(root: Path) -> dict[str, str]:
    """What a volume of a project says of where it came from, so that the volumes of a
    checkout that is gone can be found and removed."""
    return {
        PROJECT_LABEL: project_identity(root),
        CHECKOUT_LABEL: str(root.resolve()),
        HOST_LABEL: socket.gethostname(),
    }


def apt_volumes(identity: str, slug: str) -> dict[str, str]:
    """The volumes that hold one image's apt lists and package cache while it builds."""
    scope = f"{identity}-{slug}" if identity else slug
    return {
        f"{APT_VOLUME_PREFIX}lists-{scope}": "/var/lib/apt/lists",
        f"{APT_VOLUME_PREFIX}cache-{scope}": "/var/cache/apt",
    }


# Packer's plugins for Packer 1.7 and later, by the name the template gives them: the
# versions a build installs and uses unless the spec's `packer_plugins:` pins others.
# Released versions (docker 1.1.1, ansible 1.1.4); only Packer 1.6.6, with both built in,
# has run here.
PACKER_PLUGIN_DEFAULTS = {"docker": "1.1.1", "ansible": "1.1.4"}
