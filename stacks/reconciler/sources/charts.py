"""Charts from HTTP(S) chart repositories and OCI registries, cached by repository,
chart and version on the reconciler's scratch volume.

A chart version is immutable once published (Argo CD caches it the same way), so a
cached archive is used without asking the network again; only a version left open
(`targetRevision` empty or `*`) reads the repository's index.yaml each time.

    HTTP(S)  index.yaml, then the archive it names (relative URLs resolved against the
             repository), checked against the index's sha256 digest. Read here, not by
             `helm pull`, because `helm pull --repo` takes the password on its argv.
             Credentials go to the repository's own host only (helm's default without
             --pass-credentials).
    OCI      `helm pull oci://...` with a registry config file holding the credentials,
             written for that one run in a private directory (never argv).

A platform without network gets its charts preloaded (sources/preload.py: ConfigMaps
from the offline bundle): on a cache miss an exact version is taken from a preload whose
sha256 matches, before the network; an open version reads the index as always, and uses
the newest preload only when the repository cannot be reached.

Every read is bounded (timeout, bytes); the cache is bounded too (CACHE_BYTES, oldest
used first out). Called by renderer.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from stacks.errors import PermanentError, TransientError
from stacks.reconciler.sources.preload import Preloaded, PreloadLookup
from stacks.reconciler.sources.repos import RepoAccess
from stacks.reconciler.sources.run import ToolFailed, run_tool, tool_env

INDEX_BYTES = 32 * 1024 * 1024  # a big public index (bitnami's) is about 20 MiB
CHART_BYTES = 20 * 1024 * 1024
CACHE_BYTES = 512 * 1024 * 1024
FETCH_TIMEOUT = 60.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]")

try:
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _YamlLoader = yaml.SafeLoader

log = logging.getLogger(__name__)


class ChartFetchError(TransientError):
    """The repository could not be reached or read (retried with backoff)."""


class ChartNotFound(PermanentError):
    """The repository answered, and has no such chart or version."""


def open_version(version: str) -> bool:
    """A targetRevision that names no one version: the newest release is wanted."""
    return version.strip() in ("", "*", "HEAD", "latest")


class ChartCache:
    """Chart archives under `root`, one file per (repository, chart, version)."""

    def __init__(
        self, root: Path, helm: str = "helm", preload: PreloadLookup | None = None
    ) -> None:
        self.root = root
        self.helm = helm
        self.preload = preload
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.downloads = 0  # archives fetched, for tests and metrics

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def path(self, repo: str, chart: str, version: str) -> Path:
        digest = hashlib.sha256(repo.strip().rstrip("/").encode()).hexdigest()[:16]
        name = _SAFE.sub("_", chart.rsplit("/", 1)[-1])[:100]
        return self.root / digest / f"{name}-{_SAFE.sub('_', version)[:100]}.tgz"

    def resolve(self, repo: str, chart: str, version: str, access: Callable[[], RepoAccess]) -> str:
        """The exact version `version` stands for (the newest release if left open)."""
        if not open_version(version):
            return version.strip()
        if repo.startswith("oci://"):
            raise ChartNotFound(
                f"chart {chart!r} from {repo}: an OCI chart needs an exact version",
                hint="set spec.source.targetRevision to the chart version, such as 1.2.3",
            )
        try:
            entries = self._entries(repo, chart, access())
        except ChartFetchError as error:
            # Offline: the newest preloaded release, if any (one the network would name
            # newer cannot be known now).
            preloaded = [p for p in self._preloaded(repo, chart) if "-" not in p.version]
            if not preloaded:
                raise
            newest = max(preloaded, key=lambda p: _semver_key(p.version)).version
            log.info(
                "chart %s from %s: repository unreachable (%s); using the newest preloaded "
                "version %s",
                chart,
                _redact(repo),
                error,
                newest,
            )
            return newest
        releases = [
            e for e in entries if isinstance(e.get("version"), str) and "-" not in e["version"]
        ]
        if not releases:
            raise ChartNotFound(f"chart {chart!r} has no released version in {repo}")
        return str(max(releases, key=lambda e: _semver_key(str(e["version"])))["version"])

    def get(self, repo: str, chart: str, version: str, access: Callable[[], RepoAccess]) -> Path:
        """The archive of chart `chart` at `version`: from the cache, or fetched (only
        then is `access` asked for: a cached chart needs no Secret read)."""
        target = self.path(repo, chart, version)
        with self._lock(str(target)):
            if target.is_file():
                os.utime(target)  # recently used: evicted last
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            data, refused = self._from_preload(repo, chart, version)
            if data is None:
                try:
                    data = self._fetch(repo, chart, version, access)
                except ChartFetchError as error:
                    if refused:
                        raise ChartFetchError(f"{refused}; and {error}") from error
                    raise
            temp = target.with_suffix(f".tmp{threading.get_ident()}")
            temp.write_bytes(data)
            os.replace(temp, target)
            self.downloads += 1
        self._evict()
        return target

    def _fetch(
        self, repo: str, chart: str, version: str, access: Callable[[], RepoAccess]
    ) -> bytes:
        if repo.startswith("oci://"):
            data = self._pull_oci(repo, chart, version, access())
        else:
            data = self._download(repo, chart, version, access())
        log.info("chart %s %s fetched from %s", chart, version, _redact(repo))
        return data

    def fetch_archive(
        self, repo: str, chart: str, version: str, access: Callable[[], RepoAccess]
    ) -> bytes:
        """The archive from the network only (the offline bundle's `platform images
        save` reads charts this way; no cache file, no preload)."""
        return self._fetch(repo, chart, version, access)

    # ---- preloaded charts (the offline bundle) ------------------------------------------

    def _preloaded(self, repo: str, chart: str) -> list[Preloaded]:
        return self.preload(repo, chart) if self.preload is not None else []

    def _from_preload(self, repo: str, chart: str, version: str) -> tuple[bytes | None, str]:
        """(the preloaded archive of this exact version, or None; why one was refused)."""
        wanted = version.removeprefix("v")
        refused = ""
        for found in self._preloaded(repo, chart):
            if found.version.removeprefix("v") != wanted:
                continue
            if (
                len(found.data) > CHART_BYTES
                or hashlib.sha256(found.data).hexdigest() != found.sha256
            ):
                refused = (
                    f"the preloaded chart {chart} {version} does not match its recorded sha256 "
                    "digest; it was not used"
                )
                log.warning("chart %s %s from %s: %s", chart, version, _redact(repo), refused)
                continue
            log.info(
                "chart %s %s from %s: using the preloaded archive", chart, version, _redact(repo)
            )
            return found.data, ""
        return None, refused

    # ---- HTTP(S) chart repositories ----------------------------------------------------

    def _entries(self, repo: str, chart: str, access: RepoAccess) -> list[dict[str, Any]]:
        url = repo.rstrip("/") + "/index.yaml"
        raw = _read(url, access, INDEX_BYTES, "the repository index")
        try:
            index = yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as error:
            raise ChartFetchError(f"{url} is not a chart repository index: invalid YAML") from error
        entries = (index or {}).get("entries") if isinstance(index, dict) else None
        if not isinstance(entries, dict):
            raise ChartFetchError(f"{url} is not a chart repository index (no entries)")
        found = entries.get(chart)
        if not isinstance(found, list) or not found:
            raise ChartNotFound(
                f"chart {chart!r} is not in the repository {repo}",
                hint="check spec.source.chart against the repository's index.yaml",
            )
        return [e for e in found if isinstance(e, dict)]

    def _download(self, repo: str, chart: str, version: str, access: RepoAccess) -> bytes:
        entries = self._entries(repo, chart, access)
        wanted = [
            e
            for e in entries
            if str(e.get("version", "")).removeprefix("v") == version.removeprefix("v")
        ]
        if not wanted:
            known = ", ".join(sorted(str(e.get("version")) for e in entries)[:10])
            raise ChartNotFound(
                f"chart {chart!r} has no version {version!r} in {repo} (it has {known})",
                hint="set spec.source.targetRevision to one of the chart's versions",
            )
        entry = wanted[0]
        urls = entry.get("urls") or []
        if not urls or not isinstance(urls[0], str):
            raise ChartFetchError(f"the index of {repo} names no archive for {chart} {version}")
        url = urllib.parse.urljoin(repo.rstrip("/") + "/", urls[0])
        same_host = urllib.parse.urlsplit(url)[:2] == urllib.parse.urlsplit(repo)[:2]
        data = _read(
            url, access if same_host else RepoAccess(), CHART_BYTES, f"chart {chart} {version}"
        )
        expected = str(entry.get("digest") or "").lower()
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise ChartFetchError(
                f"chart {chart} {version} from {repo} does not match the sha256 digest in "
                "its index; it was not used"
            )
        return data

    # ---- OCI registries ----------------------------------------------------------------

    def _pull_oci(self, repo: str, chart: str, version: str, access: RepoAccess) -> bytes:
        reference = repo.rstrip("/") + "/" + chart
        host = urllib.parse.urlsplit(reference).netloc
        with tempfile.TemporaryDirectory(dir=self.root, prefix="pull-") as scratch:
            work = Path(scratch)
            config = work / "registry.json"
            auths: dict[str, Any] = {}
            if access.has_credentials:
                token = base64.b64encode(f"{access.username}:{access.password}".encode()).decode()
                auths[host] = {"auth": token}
            config.write_text(json.dumps({"auths": auths}))
            config.chmod(0o600)
            (work / "out").mkdir()
            argv = [
                self.helm,
                "pull",
                reference,
                "--version",
                version,
                "--destination",
                str(work / "out"),
                "--registry-config",
                str(config),
            ]
            if access.plain_http:
                argv.append("--plain-http")
            env = helm_env(work)
            try:
                run_tool(
                    argv,
                    cwd=work,
                    env=env,
                    timeout=FETCH_TIMEOUT,
                    max_output=1024 * 1024,
                    what=f"helm pull {reference}:{version}",
                )
            except ToolFailed as error:
                raise ChartFetchError(str(error)) from error
            found = sorted((work / "out").glob("*.tgz"))
            if not found:
                raise ChartFetchError(f"helm pull {reference}:{version} wrote no chart archive")
            if found[0].stat().st_size > CHART_BYTES:
                raise ChartFetchError(f"chart {chart} {version} is over {CHART_BYTES // 2**20} MiB")
            return found[0].read_bytes()

    def _evict(self) -> None:
        """Remove the least recently used archives while the cache is over CACHE_BYTES."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*.tgz")]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= CACHE_BYTES:
                break
            path.unlink(missing_ok=True)
            total -= size


def helm_env(home: Path) -> dict[str, str]:
    """An environment in which helm keeps its config, cache and data under `home`."""
    env = tool_env(home)
    env.update(
        {
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_PLUGINS": str(home / "plugins"),  # a chart cannot bring plugins in
        }
    )
    return env


def _semver_key(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version.removeprefix("v").split("+")[0])
    return tuple(int(p) for p in parts[:3]) or (0,)


def _read(url: str, access: RepoAccess, limit: int, what: str) -> bytes:
    headers = {"User-Agent": "platform-reconciler"}
    if access.has_credentials:
        token = base64.b64encode(f"{access.username}:{access.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    shown = _redact(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ChartNotFound(f"{shown}: a chart repository URL is http(s):// or oci://")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 - scheme checked
            data: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise ChartFetchError(
                f"{shown} refused {what} (HTTP {error.code}): give the reconciler credentials in "
                "a repository Secret (see the README)"
            ) from error
        if error.code == 404:
            raise ChartNotFound(f"{shown}: {what} does not exist (HTTP 404)") from error
        raise ChartFetchError(f"{shown}: HTTP {error.code} for {what}") from error
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise ChartFetchError(f"cannot read {what} from {shown}: {reason}") from error
    if len(data) > limit:
        raise ChartFetchError(f"{what} at {shown} is over {limit // 2**20} MiB; it was not used")
    return data


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
