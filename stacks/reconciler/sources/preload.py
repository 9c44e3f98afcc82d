"""Charts preloaded into the cluster as ConfigMaps, for a platform without network.

`platform images save` bundles the charts the seeded repository references, and the
bootstrap's reconciler stage puts each into the reconciler's namespace as one ConfigMap
(`chart_configmap`: the archive in binaryData, the repository, chart, version and sha256
in annotations, found by label). `ChartCache` (charts.py) asks `configmap_lookup` on a
cache miss before the network and checks the sha256 itself.

The format lives here once, for both sides: bootstrap/docker/charts_bundle.py and
bootstrap/stages/reconciler.py write it, stacks.reconciler.desired reads it. Reads go
through the caller's KubeClient (the adapter), so nothing here imports kubernetes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stacks.errors import PlatformError

LABEL = "gitops.platform.local/chart-archive"
REPO_ANNOTATION = "gitops.platform.local/chart-repo-url"
CHART_ANNOTATION = "gitops.platform.local/chart-name"
VERSION_ANNOTATION = "gitops.platform.local/chart-version"
SHA256_ANNOTATION = "gitops.platform.local/chart-sha256"
DATA_KEY = "chart.tgz"
# A ConfigMap holds 1 MiB in all; base64 in etcd's JSON plus the metadata must fit.
MAX_BYTES = 900 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preloaded:
    """One preloaded archive of a chart, with the sha256 it was saved with."""

    version: str
    sha256: str
    data: bytes


# (repository, chart) -> its preloaded versions. Raises nothing: none found is [].
PreloadLookup = Callable[[str, str], list[Preloaded]]


class ListClient(Protocol):
    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Any]: ...


def same_repo(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def configmap_name(repo: str, chart: str, version: str) -> str:
    """A DNS-1123 name, unique per (repository, chart, version)."""
    key = hashlib.sha256(f"{same_key(repo)}\n{chart}\n{version}".encode()).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]+", "-", f"{chart.rsplit('/', 1)[-1]}-{version}".lower())
    return f"chart-{base.strip('-')[:200]}-{key}"


def same_key(repo: str) -> str:
    return repo.strip().rstrip("/")


def chart_configmap(
    repo: str, chart: str, version: str, sha256: str, data: bytes, namespace: str
) -> dict[str, Any]:
    """The ConfigMap that preloads one chart archive (PlatformError when too big)."""
    if len(data) > MAX_BYTES:
        raise PlatformError(
            f"chart {chart} {version} is {len(data) // 1024} KiB, over the {MAX_BYTES // 1024} "
            "KiB a preloaded chart may have (a ConfigMap holds 1 MiB); it was not preloaded, "
            "so the cluster needs to reach its repository"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(repo, chart, version),
            "namespace": namespace,
            "labels": {LABEL: "true"},
            "annotations": {
                REPO_ANNOTATION: same_key(repo),
                CHART_ANNOTATION: chart,
                VERSION_ANNOTATION: version,
                SHA256_ANNOTATION: sha256,
            },
        },
        "binaryData": {DATA_KEY: base64.b64encode(data).decode()},
    }


def configmap_lookup(client: ListClient, namespace: str) -> PreloadLookup:
    """The preloaded versions of a chart, read from label-selected ConfigMaps in
    `namespace`. An API error (unreachable, Forbidden) is taken as none preloaded: the
    network is tried then, as without preloads."""

    def lookup(repo: str, chart: str) -> list[Preloaded]:
        try:
            found = client.list_objects(
                "v1", "ConfigMap", namespace, label_selector=f"{LABEL}=true"
            )
        except PlatformError as error:
            log.debug("preloaded charts in %s not readable: %s", namespace, error)
            return []
        out: list[Preloaded] = []
        for obj in found:
            meta = obj.get("metadata") or {}
            notes = meta.get("annotations") or {}
            if not same_repo(str(notes.get(REPO_ANNOTATION, "")), repo):
                continue
            if notes.get(CHART_ANNOTATION) != chart:
                continue
            encoded = (obj.get("binaryData") or {}).get(DATA_KEY)
            if not isinstance(encoded, str) or len(encoded) > MAX_BYTES * 4 // 3 + 4:
                continue
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                continue
            out.append(
                Preloaded(
                    str(notes.get(VERSION_ANNOTATION, "")),
                    str(notes.get(SHA256_ANNOTATION, "")).lower(),
                    data,
                )
            )
        return out

    return lookup
