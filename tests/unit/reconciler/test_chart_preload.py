"""Preloaded charts (issue 18's offline bundle) in the reconciler's ChartCache: an exact
version is taken from a preload whose sha256 matches, before the network; a tampered one
is refused by its digest; an open version reads the index and uses a preload only when
the repository cannot be reached. And the ConfigMap format both sides share."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.errors import PlatformError
from stacks.reconciler.sources.charts import ChartCache, ChartFetchError
from stacks.reconciler.sources.preload import (
    LABEL,
    MAX_BYTES,
    Preloaded,
    chart_configmap,
    configmap_lookup,
)
from stacks.reconciler.sources.repos import RepoAccess

OFFLINE = "http://127.0.0.1:1/charts"  # nothing listens on port 1


def _pre(version: str, data: bytes, sha: str | None = None) -> Preloaded:
    return Preloaded(version, sha or hashlib.sha256(data).hexdigest(), data)


def test_an_exact_version_comes_from_the_preload_before_the_network(tmp_path: Path) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(repo: str, chart: str) -> list[Preloaded]:
        asked.append((repo, chart))
        return [_pre("1.0.0", b"one"), _pre("2.0.0", b"two")]

    cache = ChartCache(tmp_path, preload=lookup)
    path = cache.get(OFFLINE, "demo", "2.0.0", RepoAccess)
    assert path.read_bytes() == b"two"
    assert cache.downloads == 1
    # Cached now: the preload is not asked again.
    assert cache.get(OFFLINE, "demo", "2.0.0", RepoAccess).read_bytes() == b"two"
    assert asked == [(OFFLINE, "demo")]


def test_a_tampered_preload_is_refused_by_its_digest(tmp_path: Path) -> None:
    cache = ChartCache(
        tmp_path, preload=lambda repo, chart: [_pre("1.0.0", b"evil", sha="ab" * 32)]
    )
    with pytest.raises(ChartFetchError, match="does not match its recorded sha256") as error:
        cache.get(OFFLINE, "demo", "1.0.0", RepoAccess)
    assert "cannot read" in str(error.value)  # and the network was tried
    assert not cache.path(OFFLINE, "demo", "1.0.0").exists()


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[str]:
    """An index on 127.0.0.1 naming demo 3.0.0 (its archive is not served)."""
    body = yaml.safe_dump(
        {"entries": {"demo": [{"version": "3.0.0", "urls": ["demo-3.0.0.tgz"]}]}}
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.endswith("/index.yaml"):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/charts"
    finally:
        server.shutdown()
        server.server_close()


def test_an_open_version_uses_the_preload_only_offline(repository: str, tmp_path: Path) -> None:
    preloads = [_pre("1.0.0", b"one"), _pre("2.0.0", b"two"), _pre("9.0.0-rc.1", b"rc")]
    cache = ChartCache(tmp_path, preload=lambda repo, chart: preloads)
    # Online: the index decides (3.0.0, which no preload has).
    assert cache.resolve(repository, "demo", "*", RepoAccess) == "3.0.0"
    # Offline: the newest preloaded release.
    assert cache.resolve(OFFLINE, "demo", "*", RepoAccess) == "2.0.0"
    assert cache.get(OFFLINE, "demo", "2.0.0", RepoAccess).read_bytes() == b"two"
    # Offline with nothing preloaded: the network's own error.
    bare = ChartCache(tmp_path / "bare", preload=lambda repo, chart: [])
    with pytest.raises(ChartFetchError, match="cannot read"):
        bare.resolve(OFFLINE, "demo", "*", RepoAccess)


class _Listing:
    """The one KubeClient call the lookup makes (the integration test uses a real API)."""

    def __init__(self, objects: list[dict[str, Any]], fail: bool = False) -> None:
        self.objects = objects
        self.fail = fail
        self.calls: list[tuple[str | None, str | None]] = []

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Any]:
        self.calls.append((namespace, label_selector))
        if self.fail:
            raise PlatformError("forbidden")
        return self.objects


def test_configmaps_round_trip_through_the_lookup() -> None:
    data = b"\x1f\x8b archive"
    sha = hashlib.sha256(data).hexdigest()
    obj = chart_configmap("http://charts.example/", "demo", "1.0.0", sha, data, "platform-system")
    assert obj["metadata"]["labels"] == {LABEL: "true"}
    assert obj["metadata"]["name"].startswith("chart-demo-1-0-0-")
    assert base64.b64decode(obj["binaryData"]["chart.tgz"]) == data
    other = chart_configmap("http://else.example", "demo", "1.0.0", sha, data, "platform-system")
    assert other["metadata"]["name"] != obj["metadata"]["name"]
    client = _Listing([obj, other])
    found = configmap_lookup(client, "platform-system")("http://charts.example", "demo")
    assert found == [Preloaded("1.0.0", sha, data)]
    assert client.calls == [("platform-system", f"{LABEL}=true")]
    assert configmap_lookup(_Listing([], fail=True), "ns")("http://x", "demo") == []


def test_a_chart_too_big_for_a_configmap_is_refused() -> None:
    with pytest.raises(PlatformError, match="a ConfigMap holds 1 MiB"):
        chart_configmap("http://c", "big", "1", "0" * 64, b"x" * (MAX_BYTES + 1), "ns")
