"""A 404 on `sys/seal-status` is an ingress with no route to Vault yet (every Vault and
OpenBao serves that path, sealed or not): the adapter says so as a wait, which the vault
stage retries within its timeout. Seen for real: Traefik answered `404 page not found`
for a moment after the OpenBao pod became ready, and `platform up` stopped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stacks.errors import WaitingError
from stacks.vault.api import VaultApi


class _NoRoute(BaseHTTPRequestHandler):
    """What Traefik answers for a host it has no ready route for."""

    def do_GET(self) -> None:
        body = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def no_route() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoRoute)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_404_on_the_seal_status_is_a_wait(no_route: str) -> None:
    with pytest.raises(WaitingError) as caught:
        VaultApi(no_route).status()
    assert "nothing routes to Vault" in caught.value.message
    assert no_route in caught.value.message
