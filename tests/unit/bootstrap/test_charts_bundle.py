"""The offline bundle's charts (issue 18): which charts the seeded repository references,
the FILE.charts.tar format, and saving from a chart repository served on 127.0.0.1 with
the reconciler's own ChartCache (an open version resolved, what is missing named)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bootstrap.docker.charts_bundle import (
    BundledChart,
    ChartRef,
    chart_references,
    charts_path,
    read_charts,
    save_charts,
    write_charts,
)
from stacks.errors import PermanentError


def _app(name: str, source: dict[str, object]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gitops.platform.local/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": "platform-system"},
            "spec": {"source": source, "destination": {"namespace": name}},
        }
    )


def test_chart_references_are_the_applications_chart_sources() -> None:
    files = {
        "registry/dev/web.yaml": _app(
            "web", {"repoURL": "http://charts.example/", "chart": "web", "targetRevision": "1.2.3"}
        ).encode(),
        # The same chart again (the repository written without its slash): once.
        "registry/dev/web2.yaml": _app(
            "web2", {"repoURL": "http://charts.example", "chart": "web", "targetRevision": "1.2.3"}
        ).encode(),
        "registry/dev/db.yaml": _app(
            "db", {"repoURL": "oci://registry.example/charts", "chart": "db", "targetRevision": "*"}
        ).encode(),
        "registry/dev/plain.yaml": _app(
            "plain", {"repoURL": "http://git.example/repo.git", "path": "apps/plain"}
        ).encode(),
        "registry/dev/gitchart.yaml": _app(
            "gitchart", {"repoURL": "file:///somewhere", "chart": "x", "targetRevision": "1"}
        ).encode(),
        "apps/web/README.md": b"# not YAML",
    }
    refs = chart_references(files)
    assert [(r.repo, r.chart, r.version, r.app) for r in refs] == [
        ("oci://registry.example/charts", "db", "*", "db"),
        ("http://charts.example/", "web", "1.2.3", "web"),
    ]


def test_the_tar_holds_each_chart_and_an_index(tmp_path: Path) -> None:
    data = b"not really gzip, but bytes"
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "bundle.tar.charts.tar"
    write_charts(path, [BundledChart("http://charts.example", "web", "1.2.3", sha, data)])
    with tarfile.open(path) as tar:
        names = tar.getnames()
        handle = tar.extractfile("index.json")
        assert handle is not None
        index = json.loads(handle.read())
    assert names[-1] == "index.json" and len(names) == 2 and names[0].startswith("charts/")
    assert index == {
        "charts": [
            {
                "repoURL": "http://charts.example",
                "chart": "web",
                "version": "1.2.3",
                "sha256": sha,
                "file": names[0],
            }
        ]
    }
    [back] = read_charts(path)
    assert (back.repo, back.chart, back.version, back.sha256, back.data) == (
        "http://charts.example",
        "web",
        "1.2.3",
        sha,
        data,
    )
    assert charts_path(Path("/x/images.tar")) == Path("/x/images.tar.charts.tar")


def test_a_tampered_or_foreign_tar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.tar"
    write_charts(path, [BundledChart("http://c", "web", "1", "0" * 64, b"data")])
    with pytest.raises(PermanentError, match="does not match its sha256"):
        read_charts(path)
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        info = tarfile.TarInfo("hello")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(PermanentError, match=r"no 'index\.json'"):
        read_charts(other)
    (tmp_path / "junk.tar").write_bytes(b"junk" * 100)
    with pytest.raises(PermanentError, match="not a chart bundle"):
        read_charts(tmp_path / "junk.tar")


def _archive(name: str, version: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        body = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[str]:
    """A chart repository on 127.0.0.1: demo 1.0.0 and 2.0.0 (and a 3.0.0-rc.1)."""
    served = tmp_path / "served"
    served.mkdir()
    entries = []
    for version in ("1.0.0", "2.0.0", "3.0.0-rc.1"):
        data = _archive("demo", version)
        (served / f"demo-{version}.tgz").write_bytes(data)
        entries.append(
            {
                "name": "demo",
                "version": version,
                "urls": [f"demo-{version}.tgz"],
                "digest": hashlib.sha256(data).hexdigest(),
            }
        )
    (served / "index.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "entries": {"demo": entries}})
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_save_fetches_resolves_and_names_what_is_missing(repository: str, tmp_path: Path) -> None:
    refs = [
        ChartRef(repository, "demo", "1.0.0", "pinned"),
        ChartRef(repository, "demo", "*", "open"),
        ChartRef(repository, "nothere", "1.0.0", "absent"),
        ChartRef("oci://127.0.0.1:1/charts", "db", "1.0.0", "oci"),
    ]
    target = tmp_path / "images.tar.charts.tar"
    saved = save_charts(target, refs, helm=None)
    assert saved.path == target
    assert [(c.chart, c.version) for c in saved.saved] == [("demo", "1.0.0"), ("demo", "2.0.0")]
    assert [(r.app, v) for r, v in saved.resolved] == [("open", "2.0.0")]
    missing = {r.app: why for r, why in saved.missing}
    assert set(missing) == {"absent", "oci"}
    assert "needs `helm` on this machine" in missing["oci"]
    assert "is not in the repository" in missing["absent"]
    back = read_charts(target)
    assert [b.version for b in back] == ["1.0.0", "2.0.0"]
    assert back[0].sha256 == hashlib.sha256(back[0].data).hexdigest() == saved.saved[0].sha256


def test_nothing_to_save_leaves_no_stale_tar(tmp_path: Path) -> None:
    target = tmp_path / "images.tar.charts.tar"
    target.write_bytes(b"from an earlier save")
    saved = save_charts(target, [ChartRef("http://127.0.0.1:1", "demo", "1.0.0", "a")], helm=None)
    assert saved.path is None and not target.exists()
    assert "cannot read" in saved.missing[0][1]


def test_the_seeded_repository_is_what_is_searched(tmp_path: Path) -> None:
    from bootstrap.config import load_settings
    from bootstrap.docker.charts_bundle import seeded_references

    env = {"PLATFORM_NAME": "ws1", "PLATFORM_DOMAIN": "ex.test"}
    # The built-in template references no chart: nothing changes without charts.
    assert seeded_references(load_settings(environ=env), tmp_path / "w1") == []
    template = tmp_path / "tpl" / "registry" / "CLUSTER"
    template.mkdir(parents=True)
    (template / "web.yaml").write_text(
        _app("web", {"repoURL": "https://charts.example", "chart": "web", "targetRevision": "*"})
    )
    settings = load_settings(flags={"template": str(tmp_path / "tpl")}, environ=env)
    refs = seeded_references(settings, tmp_path / "w2")
    assert [(r.repo, r.chart, r.version, r.app) for r in refs] == [
        ("https://charts.example", "web", "*", "web")
    ]


def test_up_records_the_charts_for_any_engine(tmp_path: Path) -> None:
    from bootstrap.config import load_settings
    from bootstrap.docker.bundle import load_into_engine, recorded_charts
    from bootstrap.state import PlatformState

    env = {"PLATFORM_NAME": "ws1", "PLATFORM_DOMAIN": "ex.test", "PLATFORM_ENGINE": "existing"}
    settings = load_settings(environ=env)
    assert settings.engine == "existing"
    state = PlatformState(tmp_path / "home", "ws1")
    images = tmp_path / "images.tar"
    images.write_bytes(b"")
    # Without charts beside it, as before: an existing cluster takes no image bundle.
    with pytest.raises(PermanentError, match="--images loads images into the k3d engine"):
        load_into_engine(settings, state, images)
    assert recorded_charts(state) is None
    write_charts(charts_path(images), [BundledChart("http://c", "web", "1", "0" * 64, b"x")])
    assert "recorded the charts" in load_into_engine(settings, state, images)
    assert recorded_charts(state) == charts_path(images.resolve())
