"""A small client of the Docker Registry HTTP API v2, for what the engine cannot do without
pulling: whether a registry holds an image (its manifest, its config's labels and image
id), and copying an image to another repository or tag inside the registry (blob mounts,
then the manifest under the tag).

Authentication as `docker push` does it: anonymous first; on a 401, Basic or the Bearer
token challenge (realm, service, scope) with the credentials of `credentials.py` or the
Docker config. The password is only ever in a request's Authorization header: never in a
log line, a URL or an error message. HTTPS, except for the registries the engine treats as
insecure (localhost, 127.0.0.0/8 and its `insecure-registries`), which are spoken to in
plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .credentials import credentials
from .engines import Auth, Engine
from .errors import RolecastError
from .spec import names_a_host

if TYPE_CHECKING:  # imported where used: a build consults a registry only to push or reuse
    import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX))
INDEXES = (DOCKER_LIST, OCI_INDEX)
TIMEOUT = 60.0
# A registry that drops a connection or answers 429/502/503/504 is asked again, three
# times, waiting longer each time (and as its Retry-After says).
RETRIES = 3
BACKOFF = 0.5


def retrying_session() -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=RETRIES,
        connect=1,  # a refused connection is asked again once, at once: a registry that is
        # not there (a cache only saves time) must not hold a plan up for seconds
        backoff_factor=BACKOFF,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=None,  # every request here can be sent again: blobs are in memory
        raise_on_status=False,  # the last answer is the error's
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


DOCKER_HUB = "docker.io"
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RolecastError):
    """The registry refused or failed a request; the message names the registry and the
    request, never a credential."""


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], docker.io for Docker Hub
    repository: str  # the path inside the registry: team/app
    tag: str

    @classmethod
    def parse(cls, reference: str) -> Reference:
        """`host:5000/team/app:tag` (or `team/app:tag` on Docker Hub)."""
        name, _, tag = reference.rpartition(":")
        if not name or "/" in tag:
            name, tag = reference, "latest"
        first, _, rest = name.partition("/")
        if rest and names_a_host(first):
            return cls(first, rest, tag)
        return cls(DOCKER_HUB, name if "/" in name else f"library/{name}", tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    data: bytes

    @property
    def content(self) -> dict[str, Any]:
        found = json.loads(self.data)
        assert isinstance(found, dict)
        return found

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES

    @property
    def config_digest(self) -> str | None:
        """The image's id (its config's digest); None for an index."""
        config = self.content.get("config") or {}
        return config.get("digest")

    def blobs(self) -> list[str]:
        """The config's and the layers' digests."""
        found = self.content
        return [d["digest"] for d in [found.get("config") or {}, *found.get("layers", [])] if d]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def insecure_host(registry: str) -> bool:
    """localhost and 127.0.0.0/8, which the engine always speaks to in plain HTTP."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host == "localhost" or host.startswith("127.")


@dataclass
class Registry:
    """One registry: its address, scheme and credentials, with a token per scope."""

    host: str
    secure: bool = True
    login: tuple[str, str] | None = field(default=None, repr=False)  # never shown
    session: requests.Session = field(default_factory=retrying_session, repr=False)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)
    _basic: bool = False

    @classmethod
    def of(cls, engine: Engine | None, registry: str) -> Registry:
        """The registry as the engine would reach it, with the credentials a push uses."""
        secure = not insecure_host(registry)
        if secure and engine is not None:
            secure = not engine.registry_insecure(registry)
        found = credentials()
        auth = found if found is not None or engine is None else engine.registry_auth(registry)
        login = (auth["username"], auth["password"]) if auth and auth.get("password") else None
        return cls(registry, secure, login)

    @property
    def base(self) -> str:
        host = "registry-1.docker.io" if self.host == DOCKER_HUB else self.host
        return f"{'https' if self.secure else 'http'}://{host}/v2/"

    # -- requests ----------------------------------------------------------------------------
    def request(
        self, method: str, path: str, scopes: list[str], **kwargs: Any
    ) -> requests.Response:
        """One request, authenticated on the registry's challenge when it asks."""
        url = path if path.startswith("http") else self.base + path
        key = " ".join(scopes)
        response = self._send(method, url, key, **kwargs)
        if response.status_code == 401:
            self._answer(response.headers.get("WWW-Authenticate", ""), scopes)
            response = self._send(method, url, key, **kwargs)
        if response.status_code == 401:
            raise RegistryError(
                f"registry {self.host} refused the credentials for {method} {path} "
                f"(HTTP 401); give them with `rolecast login {self.host}` or "
                "ROLECAST_REGISTRY_USERNAME / ROLECAST_REGISTRY_PASSWORD"
            )
        return response

    def _send(self, method: str, url: str, key: str, **kwargs: Any) -> requests.Response:
        import requests

        headers = dict(kwargs.pop("headers", {}))
        if key in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[key]}"
        auth = self.login if self._basic and key not in self._tokens else None
        try:
            return self.session.request(
                method, url, headers=headers, auth=auth, timeout=TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"registry {self.host}: {method} {url.split('?')[0]} failed: {type(exc).__name__}"
            ) from None

    def _answer(self, challenge: str, scopes: list[str]) -> None:
        """Basic: the credentials from now on; Bearer: a token for these scopes."""
        import requests

        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            self._basic = True
            return
        if scheme != "bearer":
            return
        fields = dict(_CHALLENGE.findall(challenge))
        params: list[tuple[str, str]] = [("service", fields.get("service", ""))]
        params += [("scope", s) for s in scopes or [fields.get("scope", "")] if s]
        try:
            got = self.session.get(
                fields.get("realm", ""), params=params, auth=self.login, timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise RegistryError(
                f"registry {self.host}: its token service failed: {type(exc).__name__}"
            ) from None
        if got.status_code != 200:
            raise RegistryError(
                f"registry {self.host}: its token service refused (HTTP {got.status_code}); "
                f"check the credentials (`rolecast login {self.host}`)"
            )
        try:
            body = got.json()
        except ValueError:
            raise RegistryError(f"registry {self.host}: its token service sent no JSON") from None
        self._tokens[" ".join(scopes)] = body.get("token") or body.get("access_token", "")

    def _fail(self, response: requests.Response, what: str) -> RegistryError:
        text = " ".join(response.text.split())[:200]
        return RegistryError(f"registry {self.host}: {what}: HTTP {response.status_code} {text}")

    # -- manifests and blobs -------------------------------------------------------------------
    def manifest(self, repository: str, reference: str, *, head: bool = False) -> Manifest | None:
        """The manifest of a tag or digest, or None when the registry has none."""
        scopes = [f"repository:{repository}:pull"]
        response = self.request(
            "HEAD" if head else "GET",
            f"{repository}/manifests/{reference}",
            scopes,
            headers={"Accept": ACCEPT},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"manifest {repository}:{reference}")
        data = b"" if head else response.content
        digest = response.headers.get("Docker-Content-Digest") or sha256(data)
        media = response.headers.get("Content-Type", "").split(";")[0]
        return Manifest(digest, media or self._media(data), data)

    @staticmethod
    def _media(data: bytes) -> str:
        try:
            return str(json.loads(data).get("mediaType", DOCKER_MANIFEST))
        except ValueError:
            return DOCKER_MANIFEST

    def blob(self, repository: str, digest: str) -> bytes:
        scopes = [f"repository:{repository}:pull"]
        response = self.request("GET", f"{repository}/blobs/{digest}", scopes)
        if response.status_code != 200:
            raise self._fail(response, f"blob {digest[:19]} of {repository}")
        return response.content

    def config(self, repository: str, manifest: Manifest) -> dict[str, Any]:
        """An image's config (labels under config.Labels); its digest is the image id."""
        digest = manifest.config_digest
        if digest is None:
            raise RegistryError(f"registry {self.host}: {manifest.digest} is not an image")
        found = json.loads(self.blob(repository, digest))
        assert isinstance(found, dict)
        return found

    def has_blob(self, repository: str, digest: str) -> bool:
        scopes = [f"repository:{repository}:pull"]
        return self.request("HEAD", f"{repository}/blobs/{digest}", scopes).status_code == 200

    def mount(self, repository: str, digest: str, source: str) -> bool:
        """Mount a blob of `source` into `repository`; False when the registry refused
        (it then opened an upload, cancelled here)."""
        scopes = [f"repository:{repository}:pull,push", f"repository:{source}:pull"]
        response = self.request(
            "POST", f"{repository}/blobs/uploads/?mount={digest}&from={source}", scopes
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202 and "Location" in response.headers:
            self.request("DELETE", self._absolute(response.headers["Location"]), scopes)
            return False
        raise self._fail(response, f"mount of {digest[:19]} into {repository}")

    def upload(self, repository: str, digest: str, data: bytes) -> None:
        """A monolithic upload: POST for a location, PUT the bytes there."""
        scopes = [f"repository:{repository}:pull,push"]
        started = self.request("POST", f"{repository}/blobs/uploads/", scopes)
        if started.status_code != 202 or "Location" not in started.headers:
            raise self._fail(started, f"upload into {repository}")
        location = self._absolute(started.headers["Location"])
        joiner = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{joiner}digest={digest}",
            scopes,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise self._fail(done, f"upload of {digest[:19]} into {repository}")

    def _absolute(self, location: str) -> str:
        if location.startswith("http"):
            return location
        return self.base.removesuffix("/v2/") + location

    def copy_blob(self, repository: str, digest: str, source: str) -> None:
        """A blob of `source` in `repository`: already there, mounted, or copied."""
        if source == repository or self.has_blob(repository, digest):
            return
        if not self.mount(repository, digest, source):
            self.upload(repository, digest, self.blob(source, digest))

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """The manifest under a tag (or its digest); the digest the registry gives it."""
        scopes = [f"repository:{repository}:pull,push"]
        response = self.request(
            "PUT",
            f"{repository}/manifests/{reference}",
            scopes,
            data=manifest.data,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status_code not in (200, 201):
            raise self._fail(response, f"manifest {repository}:{reference}")
        return response.headers.get("Docker-Content-Digest") or manifest.digest

    def copy(self, source: str, manifest: Manifest, repository: str, tag: str) -> str:
        """The image `manifest` of `source` under `repository:tag`, without a pull: its
        blobs mounted (each platform's, for an index), then the manifest put; its digest."""
        if manifest.is_index:
            for child in manifest.content.get("manifests", []):
                found = self.manifest(source, child["digest"])
                if found is not None:
                    self.copy(source, found, repository, child["digest"])
        else:
            for digest in manifest.blobs():
                self.copy_blob(repository, digest, source)
        return self.put_manifest(repository, tag, manifest)


def registry_holds(engine: Engine, reference: str, auth: Auth = None) -> bool:
    """Whether a registry holds `reference`: the engine asks it (as a pull would reach it);
    an engine that cannot ask (Podman 4.3) leaves it to this client. False when the
    registry cannot say: the shared cache only saves time."""
    found = engine.registry_has(reference, auth)
    if found is not None:
        return found
    where = Reference.parse(reference)
    registry = Registry.of(engine, where.registry)
    if auth and auth.get("password"):
        registry.login = (auth["username"], auth["password"])
    try:
        return registry.manifest(where.repository, where.tag, head=True) is not None
    except RegistryError:
        return False
