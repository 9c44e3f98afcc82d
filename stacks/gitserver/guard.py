"""waitress, hardened against hostile peers: no body before auth, bounded scratch space,
slow and idle connections shed.

`server.py` builds its server with `make_server()`. Stock waitress reads a whole request
body (spooling it to TMPDIR) before the application runs, and keeps a connection for as
long as it trickles a byte now and then. Here:

- `GatedParser` decides when a request's headers are complete, before one byte of its
  body is kept: a request whose credentials would not be accepted (`Gatekeeper.admits`)
  gets its body dropped and reaches the application with none, which answers 401 or 429
  and closes the connection. An accepted body reserves its size from the
  `ScratchBudget` (chunked bodies as they arrive); when that is spent the request gets
  503 and nothing more is buffered.
- `GuardedServer` closes connections whose request headers are not complete within
  `header_timeout` seconds (slowloris), and when the connection limit is reached it
  sheds the connections that are idle or still sending headers, least recently active
  first, instead of refusing new ones: so /healthz and clones keep being answered.
  Connections with a request being served, or an accepted body arriving, are never shed.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.utilities import Error

from stacks.gitserver.limits import ScratchBudget
from stacks.gitserver.throttle import Gatekeeper

log = logging.getLogger("platform.gitserver.guard")

SHED_SHARE = 0.1  # when full, shed this share of the connection limit at once


class ScratchSpaceFull(Error):  # type: ignore[misc] # waitress is untyped
    code = 503
    reason = "Service Unavailable"


class GatedParser(HTTPRequestParser):  # type: ignore[misc] # waitress is untyped
    """waitress's request parser, asking the gatekeeper before it keeps any body."""

    # waitress's own attributes, as this class uses them
    body_rcv: Any
    headers: dict[str, str]

    def __init__(
        self, adj: Adjustments, gate: Gatekeeper, budget: ScratchBudget, client: str
    ) -> None:
        super().__init__(adj)
        self._gate = gate
        self._budget = budget
        self._client = client
        self.started = time.monotonic()
        self.body_admitted = False
        self.reserved = 0

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        if self.body_admitted and self.chunked and not self._reserve(len(data)):
            return len(data)
        was_in_header = not self.headers_finished
        consumed: int = super().received(data)
        body_follows = self.headers_finished and not self.completed and self.body_rcv is not None
        if was_in_header and body_follows and not self._admit():
            return len(data)  # the rest of this read is body: dropped, not buffered
        return consumed

    def _admit(self) -> bool:
        if not self._gate.admits(self.headers.get("AUTHORIZATION"), self._client):
            self._drop_body()
            return False
        self.body_admitted = True
        return self.chunked or self._reserve(self.content_length)

    def _reserve(self, size: int) -> bool:
        if self._budget.reserve(size):
            self.reserved += size
            return True
        log.warning(
            "refused a request body from %s: %d bytes of scratch space in use, limit %d",
            self._client,
            self._budget.used,
            self._budget.limit,
        )
        self._drop_body()
        self.error = ScratchSpaceFull("request bodies in progress fill the scratch space; retry")
        return False

    def _drop_body(self) -> None:
        """Complete the request with an empty body and close the connection after it."""
        if self.body_rcv is not None:
            self.body_rcv.getbuf().close()
        self.body_rcv = None
        self.chunked = False
        self.content_length = 0
        self.headers["CONTENT_LENGTH"] = "0"
        self.headers["CONNECTION"] = "close"
        self.connection_close = True
        self.expect_continue = False  # never invite the body with 100 Continue
        self.completed = True

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._budget.release(self.reserved)
            self.reserved = 0


class GuardedChannel(HTTPChannel):  # type: ignore[misc] # waitress is untyped
    """One connection; its parsers are gated, and a half-read request is released."""

    # waitress's own attributes, as this class uses them
    request: Any
    requests: list[Any]
    will_close: bool

    def __init__(
        self, server: GuardedServer, sock: Any, addr: Any, adj: Adjustments, map: Any = None
    ) -> None:
        client = str(addr[0]) if isinstance(addr, tuple) and addr else "-"
        self.parser_class = functools.partial(
            GatedParser, gate=server.gate, budget=server.budget, client=client
        )
        super().__init__(server, sock, addr, adj, map=map)

    def handle_close(self) -> None:
        if self.request is not None:  # a body still arriving: give back its scratch space
            self.request.close()
            self.request = None
        super().handle_close()

    def sheddable(self) -> bool:
        """No request is being served and no accepted body is arriving."""
        if self.requests or self.will_close:
            return False
        request = self.request
        return request is None or not getattr(request, "body_admitted", False)

    def headers_overdue(self, now: float, header_timeout: float) -> bool:
        request = self.request
        return (
            request is not None
            and not request.headers_finished
            and now - getattr(request, "started", now) > header_timeout
        )


class GuardedServer(TcpWSGIServer):  # type: ignore[misc] # waitress is untyped
    channel_class = GuardedChannel

    def __init__(
        self,
        app: Any,
        adj: Adjustments,
        gate: Gatekeeper,
        budget: ScratchBudget,
        header_timeout: float,
    ) -> None:
        self.gate = gate
        self.budget = budget
        self.header_timeout = header_timeout
        self._next_shed_log = 0.0
        super().__init__(app, map={}, adj=adj)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle connections (channel_timeout)
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            if not channel.requests and channel.headers_overdue(mono, self.header_timeout):
                channel.will_close = True

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self._shed()
        return bool(super().readable())

    def _shed(self) -> None:
        """Mark the least recently active sheddable connections to close."""
        channels = list(self.active_channels.values())
        closing = sum(1 for c in channels if c.will_close)
        wanted = max(1, int(self.adj.connection_limit * SHED_SHARE)) - closing
        if wanted <= 0:
            return
        victims = sorted(
            (c for c in channels if c.sheddable()),
            key=lambda c: c.last_activity,
        )[:wanted]
        for channel in victims:
            channel.will_close = True
        now = time.monotonic()
        if victims and now >= self._next_shed_log:  # one line per 10 s under a flood
            self._next_shed_log = now + 10.0
            log.warning(
                "connection limit %d reached: closing %d idle or slow connection(s)",
                self.adj.connection_limit,
                len(victims),
            )


def make_server(
    app: Any,
    gate: Gatekeeper,
    budget: ScratchBudget,
    header_timeout: float,
    **adjustments: Any,
) -> GuardedServer:
    """A listening server on adjustments' host:port; `.run()` serves until interrupted."""
    adj = Adjustments(**adjustments)
    return GuardedServer(app, adj, gate, budget, header_timeout)
