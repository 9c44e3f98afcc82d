"""helm and kustomize for the component image (issue 18): given binaries are copied in,
a release with no pinned checksum is left out with a line saying so, and a download
whose SHA-256 differs from the pin is refused (served by a local HTTP server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from bootstrap.docker import renderers
from stacks.errors import PermanentError


def test_given_binaries_are_copied_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helm = tmp_path / "helm-built"
    helm.write_bytes(b"#!/bin/sh\necho helm\n")
    kustomize = tmp_path / "kustomize-built"
    kustomize.write_bytes(b"#!/bin/sh\necho kustomize\n")
    monkeypatch.setenv(
        renderers.OVERRIDE, json.dumps({"helm": str(helm), "kustomize": str(kustomize)})
    )
    lines: list[str] = []
    assert renderers.stage(tmp_path / "bin", lines.append) == ["helm", "kustomize"]
    assert (tmp_path / "bin" / "helm").read_bytes() == helm.read_bytes()
    assert (tmp_path / "bin" / "kustomize").stat().st_mode & 0o111
    assert lines == []


def test_no_pinned_checksum_leaves_the_tool_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(renderers.OVERRIDE, raising=False)
    monkeypatch.setattr(
        renderers,
        "RENDERERS",
        (renderers.Renderer("helm", "v0", "http://127.0.0.1:9/x", "helm", {}),),
    )
    lines: list[str] = []
    assert renderers.stage(tmp_path / "bin", lines.append) == []
    assert (tmp_path / "bin").is_dir() and not (tmp_path / "bin" / "helm").exists()
    assert "no release checksum is pinned" in lines[0]


def test_a_download_that_does_not_match_its_pin_is_refused(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"binary"
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    (served / "helm.tar.gz").write_bytes(buffer.getvalue())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/helm.tar.gz"
        good = hashlib.sha256(buffer.getvalue()).hexdigest()
        assert renderers._member(renderers._download(url, good), "linux-amd64/helm") == b"binary"
        with pytest.raises(PermanentError, match="not the pinned"):
            renderers._download(url, "0" * 64)
    finally:
        server.shutdown()
        server.server_close()
