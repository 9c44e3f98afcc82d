"""Serve the WSGI app with waitress, and shut down gracefully on SIGTERM or SIGINT.

`program.py` calls `serve()`. On the first SIGTERM/SIGINT the server stops accepting
connections, lets requests in flight finish (a push is never cut half-way) for up to
`drain_timeout` seconds, flushes queued webhooks for a few seconds, and returns. A second
signal stops at once.
"""

from __future__ import annotations

import _thread
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import waitress
import waitress.server
from waitress import wasyncore

log = logging.getLogger("platform.gitserver.server")


def serve(
    app: Callable[..., Any],
    host: str,
    port: int,
    threads: int,
    in_flight: Callable[[], int],
    drain_timeout: float = 25.0,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run until a signal; return after draining (or at once on a second signal)."""
    server: Any = waitress.create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="platform-gitserver",
        channel_timeout=300,
        connection_limit=200,
        clear_untrusted_proxy_headers=True,
        # Stream large responses (clones) without holding them in memory.
        outbuf_overflow=1024 * 1024,
        inbuf_overflow=512 * 1024,
        max_request_body_size=4 * 1024**3,
    )
    if not isinstance(server, waitress.server.BaseWSGIServer):  # several sockets
        raise RuntimeError("listen on a single address (host:port)")

    draining = threading.Event()

    def drain() -> None:
        deadline = time.monotonic() + drain_timeout
        while in_flight() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        left = in_flight()
        if left:
            log.warning("stopping with %d request(s) still in flight", left)
        _thread.interrupt_main(signal.SIGTERM)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if draining.is_set():  # the drain finished (interrupt_main), or a second signal
            raise KeyboardInterrupt
        draining.set()
        log.info("received %s: draining %d request(s)", signal.Signals(signum).name, in_flight())
        # Stop accepting (connections are refused from now on); channels in flight and
        # the trigger that wakes the loop for their output stay open. The socket is
        # closed from the loop itself, never under a select() that is being retried.
        server.trigger.pull_trigger(lambda: stop_listening(server))
        threading.Thread(target=drain, name="gitserver-drain", daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    host_bound, port_bound = server.effective_host, server.effective_port
    log.info("listening on http://%s:%s", host_bound, port_bound)
    if on_ready is not None:
        on_ready(str(host_bound), int(port_bound))
    try:
        server.run()  # returns on KeyboardInterrupt, after closing the listening socket
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        server.trigger.close()
        wasyncore.close_all(server._map)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_listening(server: Any) -> None:
    """Close the listening socket (run inside the waitress loop, between selects)."""
    server.accepting = False
    server.del_channel()
    server.socket.close()
