"""What every `platform run <component>` program shares: flags that also read environment
variables, logging with the secret filter, the API connection, stopping on signals, the
health/ready/metrics endpoint and optional leader election.

Used by the programs of secrets, certs, dns, the unsealer and the reconciler (everything
below; the reconciler's push webhook is a POST route of its `Endpoints`) and the git
server (flags, logging, and its /metrics text, which it serves on its own port beside
git), so each program module holds only its own flags and its own start-up.

    options = ProgramOptions("certs", "Issues certificates ...")
    options.add("--workers", type=int, default=4, help="parallel reconciles")
    options.add_endpoints()               # --listen: /healthz, /readyz, /metrics
    options.add_leader_election()         # --leader-elect, --lease-namespace
    args = options.parse(argv)            # --workers also reads PLATFORM_CERTS_WORKERS
    configure_logging(args.log_level)
    client = connect(args)                # None (after a logged error) when unreachable
    stop = stop_on_signals()              # SIGTERM/SIGINT set it
    endpoints = serve_endpoints(args, "certs", ready=runtime.synced, metrics=collect)
    runtime.run(stop, leader_for(args, client, "certs"))

/metrics is Prometheus text from `prometheus_client` (with its process_* metrics: RSS,
CPU, open files); a program's own values are read when scraped (`collect` returns
`Sample`s, or a `Collector` yields whole families: labels, histograms), so the hot paths
only bump plain integers.

Anyone who can reach the port can send anything, so every request is bounded before a
handler sees it (`BoundedHTTPServer`): a whole request must arrive within
REQUEST_DEADLINE (a watchdog closes the socket, so a peer that sends one byte a second
is cut off too), at most MAX_CONNECTIONS are served at once (more get 503 at once,
without a thread), a POST body is at most MAX_BODY, and malformed headers get 400
instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stacks.errors import PlatformError
from stacks.redact import RedactingFilter

if TYPE_CHECKING:  # the git server needs no Kubernetes client: import it only to connect
    from stacks.kube.client import KubeClient
    from stacks.kube.leader import LeaderElector

log = logging.getLogger("stacks.program")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
MAX_BODY = 64 * 1024
REQUEST_DEADLINE = 10.0  # seconds for a whole request, headers and body
MAX_CONNECTIONS = 32  # requests served at once; each holds a thread


class ProgramOptions:
    """An argparse parser whose every option also reads PLATFORM_<COMPONENT>_<OPTION>."""

    def __init__(
        self,
        component: str,
        description: str,
        kube: bool = True,
        token_auth: bool = False,
        env_prefix: str | None = None,
        log_level: bool = True,
    ) -> None:
        # env_prefix: the git server's variables were named PLATFORM_GIT_* before this
        # shell existed, and manifests and the bootstrap set them.
        self.component = component
        self.prefix = env_prefix or f"PLATFORM_{component.upper()}_"
        self.parser = argparse.ArgumentParser(
            prog=f"platform run {component}", description=description
        )
        if kube:
            self.add("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
            self.add("--context", help="kubeconfig context")
        if token_auth:
            self.add("--server", help="API server URL, with --token-file")
            self.add("--token-file", help="bearer token file, e.g. a ServiceAccount token")
            self.add("--ca-file", help="API server CA bundle for --server")
        self._list_defaults: dict[str, list[str]] = {}
        if log_level:
            self.add("--log-level", default="INFO", help="DEBUG, INFO, WARNING")

    def env_name(self, flag: str, env: str | None = None) -> str:
        return self.prefix + (env or flag.lstrip("-").upper().replace("-", "_"))

    def env(self, flag: str, env: str | None = None, legacy: str | None = None) -> str | None:
        """The option's variable; else `legacy`, a name it had before (e.g. VAULT_ADDR)."""
        value = os.environ.get(self.env_name(flag, env))
        if (value is None or value == "") and legacy:
            value = os.environ.get(legacy)
        return value

    def _help(self, flag: str, help: str, env: str | None, legacy: str | None) -> str:
        names = self.env_name(flag, env) + (f" or {legacy}" if legacy else "")
        return f"{help} (env {names})"

    def add(
        self,
        flag: str,
        *aliases: str,
        default: Any = None,
        help: str,
        env: str | None = None,
        legacy_env: str | None = None,
        **kwargs: Any,
    ) -> None:
        """An option whose default comes from its environment variable when that is set
        (`env`: the variable's suffix when it is not the flag's name)."""
        raw = self.env(flag, env, legacy_env)
        if raw is not None and raw != "":
            convert = kwargs.get("type", str)
            default = convert(raw)
        self.parser.add_argument(
            flag, *aliases, default=default, help=self._help(flag, help, env, legacy_env), **kwargs
        )

    def add_list(self, flag: str, help: str, env: str | None = None, **kwargs: Any) -> None:
        """A repeatable option; its environment variable is a comma-separated list."""
        raw = self.env(flag, env) or ""
        default = [part.strip() for part in raw.split(",") if part.strip()]
        self.parser.add_argument(
            flag,
            action="append",
            default=None,
            help=self._help(flag, f"{help}; repeatable (env: comma-separated)", env, None),
            **kwargs,
        )
        self._list_defaults[self.parser._option_string_actions[flag].dest] = default

    def add_flag(self, flag: str, help: str) -> None:
        """A --flag that is off unless given; its environment variable takes true words."""
        raw = self.env(flag) or ""
        self.parser.add_argument(
            flag,
            action="store_true",
            default=raw.strip().lower() in TRUE_WORDS,
            help=self._help(flag, help, None, None),
        )

    def add_switch(self, flag: str, default: bool, help: str) -> None:
        """A --flag/--no-flag switch; its environment variable takes true/false words."""
        raw = self.env(flag)
        if raw is not None and raw != "":
            default = raw.strip().lower() in TRUE_WORDS
        self.parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=default,
            help=self._help(flag, help, None, None),
        )

    def add_endpoints(self, default: str = "127.0.0.1:0", aliases: tuple[str, ...] = ()) -> None:
        """--listen HOST:PORT for /healthz, /readyz and /metrics. The default on a host is
        a free local port (several components side by side); manifests set 0.0.0.0:8080."""
        self.add(
            "--listen",
            *aliases,
            dest="listen",
            default=default,
            help="HTTP address for /healthz, /readyz and /metrics (port 0: a free one)",
        )

    def add_leader_election(self, namespace: str) -> None:
        """--leader-elect: act only while holding a Lease, so replicas never both act."""
        self.add_switch(
            "--leader-elect", False, "hold a coordination.k8s.io Lease before acting (replicas)"
        )
        self.add("--lease-namespace", default=namespace, help="namespace of the Lease")

    def parse(self, argv: list[str]) -> argparse.Namespace:
        args = self.parser.parse_args(argv)
        for dest, default in self._list_defaults.items():
            if getattr(args, dest) is None:  # flags replace the variable's list, not extend it
                setattr(args, dest, default)
        return args


def configure_logging(level: str, quiet: tuple[str, ...] = ("urllib3",)) -> None:
    """Log lines to stderr through the secret filter; chatty libraries at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(args: argparse.Namespace) -> KubeClient | None:
    """The API client the flags describe (token, kubeconfig or in-cluster); None, after
    logging why, when it cannot be built."""
    from stacks.kube.client import KubeClient

    try:
        if getattr(args, "server", None) and getattr(args, "token_file", None):
            token = Path(args.token_file).read_text().strip()
            return KubeClient.from_token(args.server, token, args.ca_file)
        return KubeClient.auto(args.kubeconfig, args.context)
    except (PlatformError, OSError) as error:
        log.error("failed to connect to the Kubernetes API: %s", error)
        return None


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set: the program's graceful stop."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


# ---- health, readiness, metrics ----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One value for /metrics: a counter (name without `_total`) or a gauge."""

    name: str
    help: str
    value: float
    counter: bool = False


class _Collector(Collector):
    def __init__(self, collect: Callable[[], Iterable[Sample]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        for sample in self._collect():
            family = CounterMetricFamily if sample.counter else GaugeMetricFamily
            yield family(sample.name, sample.help, value=sample.value)


def registry_for(
    collect: Callable[[], Iterable[Sample]] | None, collectors: Sequence[Collector] = ()
) -> CollectorRegistry:
    """A registry with the process metrics and the program's own samples and collectors."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    if collect is not None:
        registry.register(_Collector(collect))
    for collector in collectors:
        registry.register(collector)
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on concurrent requests, a deadline for each whole
    request, and quiet disconnects. Also the base of `platform ui`'s server."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS
    request_deadline = REQUEST_DEADLINE

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        # Before the bind: a port in use ends __init__ in server_close(), which uses it.
        self._stopping = threading.Event()
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(self.max_connections)
        # One watchdog for every request (a timer per request would double the threads).
        self._deadlines: dict[Any, float] = {}
        self._guard = threading.Lock()
        threading.Thread(target=self._reap, name="http-deadline", daemon=True).start()

    def watch(self, connection: Any) -> None:
        with self._guard:
            self._deadlines[connection] = time.monotonic() + self.request_deadline

    def unwatch(self, connection: Any) -> None:
        with self._guard:
            self._deadlines.pop(connection, None)

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()

    def _reap(self) -> None:
        while not self._stopping.wait(0.5):
            now = time.monotonic()
            with self._guard:
                expired = [c for c, when in self._deadlines.items() if when <= now]
                for connection in expired:
                    del self._deadlines[connection]
            for connection in expired:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                    b"Retry-After: 1\r\nConnection: close\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that disconnects or stalls is not a bug in the program: one line, not
        # a traceback on stderr.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            log.exception("failed to handle a request from %s", client_address)


@dataclass(frozen=True)
class Answer:
    """A POST route's answer."""

    code: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


# A POST route: (headers, body of 1..MAX_BODY bytes, the peer's address) -> its answer.
PostHandler = Callable[[Message, bytes, str], Answer]


class Endpoints:
    """GET /healthz (200 while the process serves), /readyz (200 once `ready()`), and
    /metrics (Prometheus text), plus a program's own POST routes (the reconciler's
    /webhook), on a small bounded HTTP server of their own."""

    def __init__(
        self,
        component: str,
        address: str,
        ready: Callable[[], bool],
        collect: Callable[[], Iterable[Sample]] | None = None,
        posts: Mapping[str, PostHandler] | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        host, _, port = address.rpartition(":")
        registry = registry_for(collect, collectors)
        component_log = logging.getLogger(f"stacks.{component}")
        routes = dict(posts or {})

        class Handler(BaseHTTPRequestHandler):
            server_version = f"platform-{component}"
            timeout = REQUEST_DEADLINE  # per socket operation; the watchdog bounds the sum

            def setup(self) -> None:
                super().setup()
                cast(BoundedHTTPServer, self.server).watch(self.connection)

            def finish(self) -> None:
                cast(BoundedHTTPServer, self.server).unwatch(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                component_log.debug("%s %s", self.address_string(), format % args)

            def _send(self, code: int, data: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                content_type = "text/plain; charset=utf-8"
                if self.path == "/healthz":
                    code, data = 200, b"ok\n"
                elif self.path == "/readyz":
                    code, data = (200, b"ok\n") if ready() else (503, b"starting\n")
                elif self.path == "/metrics":
                    code, data = 200, metrics_text(registry)
                    content_type = "text/plain; version=0.0.4; charset=utf-8"
                else:
                    code, data = 404, b"not found\n"
                self._send(code, data, content_type)

            def do_POST(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length <= 0 or length > MAX_BODY:
                    self._send(
                        400, b"a body of at most 64 KiB is required\n", "text/plain; charset=utf-8"
                    )
                    return
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the peer went away mid-body (or the watchdog cut it off)
                answer = route(self.headers, body, self.address_string())
                self._send(answer.code, answer.body.encode(), answer.content_type)

        bind = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a pod's probes come from outside
        self.httpd = BoundedHTTPServer((bind, int(port)), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"{component}-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> Endpoints:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_endpoints(
    args: argparse.Namespace,
    component: str,
    ready: Callable[[], bool],
    collect: Callable[[], Iterable[Sample]] | None = None,
    posts: Mapping[str, PostHandler] | None = None,
    collectors: Sequence[Collector] = (),
) -> Endpoints | None:
    """Start the endpoints at `args.listen`; None, after a logged error, if it cannot."""
    try:
        endpoints = Endpoints(component, args.listen, ready, collect, posts, collectors).start()
    except (OSError, ValueError) as error:
        log.error("failed to listen on %s: %s", args.listen, error)
        return None
    paths = ", ".join(["/healthz", "/readyz", "/metrics", *(posts or {})])
    log.info("%s: %s on http://%s", component, paths, endpoints.address)
    return endpoints


def leader_for(
    args: argparse.Namespace, client: KubeClient, component: str
) -> LeaderElector | None:
    """The Lease `platform-<component>` to hold when --leader-elect is on; else None."""
    if not getattr(args, "leader_elect", False):
        return None
    from stacks.kube.leader import LeaderElector

    identity = f"{socket.gethostname()}_{os.getpid()}"
    return LeaderElector(client, args.lease_namespace, f"platform-{component}", identity)
