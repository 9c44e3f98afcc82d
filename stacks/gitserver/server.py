"""Serve the WSGI app with waitress, and shut down gracefully on SIGTERM or SIGINT.

`program.py` calls `serve()`. The waitress server comes from `guard.py` (credentials
checked before a body is buffered, a scratch-space budget, slow and idle connections
shed); the limits are `Limits`. On the first SIGTERM/SIGINT the server stops accepting
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
from dataclasses import dataclass
from types import FrameType
from typing import Any

from waitress import wasyncore

from stacks.gitserver.guard import make_server
from stacks.gitserver.limits import INBUF_MEMORY, ScratchBudget
from stacks.gitserver.throttle import Gatekeeper

log = logging.getLogger("platform.gitserver.server")


@dataclass(frozen=True)
class Limits:
    """What one peer may hold of the server: see program.py's flags."""

    max_body: int  # bytes of request bodies buffered at once, all requests together
    idle_timeout: float = 60.0  # seconds a connection may sit with no request
    header_timeout: float = 15.0  # seconds to send a request's line and headers
    max_connections: int = 200


def serve(
    app: Callable[..., Any],
    host: str,
    port: int,
    threads: int,
    in_flight: Callable[[], int],
    gate: Gatekeeper,
    limits: Limits,
    drain_timeout: float = 25.0,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run until a signal; return after draining (or at once on a second signal)."""
    server: Any = make_server(
        app,
        gate,
        ScratchBudget(limits.max_body),
        limits.header_timeout,
        host=host,
        port=port,
        threads=threads,
        ident="platform-gitserver",
        channel_timeout=max(1, int(limits.idle_timeout)),
        # how often idle and header timeouts are checked: often enough to matter
        cleanup_interval=max(1, int(min(limits.idle_timeout, limits.header_timeout) / 4)),
        connection_limit=limits.max_connections,
        clear_untrusted_proxy_headers=True,
        # Stream large responses (clones) without holding them in memory.
        outbuf_overflow=1024 * 1024,
        inbuf_overflow=INBUF_MEMORY,
        # waitress refuses a body of this size or more; the budget bounds all together
        max_request_body_size=limits.max_body + 1,
    )

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
