"""A local stand-in for the k3d and OpenTofu release downloads: an HTTP server on
127.0.0.1 serving the real binaries testenv built, named as the official release files
(`k3d-linux-amd64`, `tofu_<version>_linux_amd64.zip`).

`platform` is pointed at it through PLATFORM_TEST_DOWNLOADS (bootstrap/tools.py), which
also replaces the pinned checksums with these files' own: the binaries are the real
programs at the pinned versions, but built here, so their bytes differ from the official
files. The server can also cut a download short (a Content-Length it does not honour)
to show what a dropped connection leaves behind. Every request is recorded.

Used by tests/integration/bootstrap/test_tool_downloads.py, the fresh-clone e2e and
bench/tools_bench.py.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.tools import K3D, TEST_OVERRIDE, TOFU, host_platform
from tests.support.binaries import require_binary


def release_files(directory: Path) -> dict[str, Path]:
    """The release files for this machine, made from testenv's k3d and tofu (the zip once)."""
    system, arch = host_platform()
    directory.mkdir(parents=True, exist_ok=True)
    k3d = directory / K3D.asset(system, arch)
    if not k3d.exists():
        k3d.write_bytes(require_binary("k3d").read_bytes())
    archive = directory / TOFU.asset(system, arch)
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        # Stored, not deflated: the same zip format, made in a second instead of ten.
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as bundle:
            bundle.write(require_binary("tofu"), "tofu")
        partial.replace(archive)
    return {"k3d": k3d, "tofu": archive}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ReleaseServer:
    files: dict[str, Path]  # tool name -> file
    truncate: bool = False  # send half the bytes, then close (Content-Length says all)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""
    sums: dict[str, str] = field(default_factory=dict)

    def override(self, **sha256_overrides: str) -> str:
        """The PLATFORM_TEST_DOWNLOADS value pointing `platform` here."""
        return json.dumps({"base_url": self.base_url, "sha256": {**self.sums, **sha256_overrides}})

    def env(self, **sha256_overrides: str) -> dict[str, str]:
        return {TEST_OVERRIDE: self.override(**sha256_overrides)}


@contextmanager
def serve_releases(files: dict[str, Path]) -> Iterator[ReleaseServer]:
    server_state = ReleaseServer(files, sums={tool: sha256(path) for tool, path in files.items()})
    by_name = {path.name: path for path in files.values()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            server_state.requests.append(name)
            path = by_name.get(name)
            if path is None:
                self.send_error(404)
                return
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            limit = size // 2 if server_state.truncate else size
            with path.open("rb") as handle:
                sent = 0
                while sent < limit:
                    chunk = handle.read(min(1 << 20, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
            if server_state.truncate:
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
