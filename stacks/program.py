"""What every `platform run <component>` program shares: flags that also read environment
variables, logging with the secret filter, the API connection, stopping on signals, the
health/ready/metrics endpoint and optional leader election.

Used by the programs of secrets, certs, dns and the unsealer (everything below), the git
server (flags, logging, and its /metrics text, which it serves on its own port beside
git) and the reconciler (flags, logging, connection, signals; its own HTTP server, which
also takes webhooks, moves onto `Endpoints` in phase 2 of issue 17), so each program
module holds only its own flags and its own start-up.

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
`Sample`s), so the hot paths only bump plain integers.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

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


def registry_for(collect: Callable[[], Iterable[Sample]] | None) -> CollectorRegistry:
    """A registry with the process metrics and the program's own samples."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    if collect is not None:
        registry.register(_Collector(collect))
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class Endpoints:
    """GET /healthz (200 while the process serves), /readyz (200 once `ready()`), and
    /metrics (Prometheus text), on a small threaded HTTP server of their own."""

    def __init__(
        self,
        component: str,
        address: str,
        ready: Callable[[], bool],
        collect: Callable[[], Iterable[Sample]] | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        registry = registry_for(collect)
        component_log = logging.getLogger(f"stacks.{component}")

        class Handler(BaseHTTPRequestHandler):
            server_version = f"platform-{component}"

            def log_message(self, format: str, *args: Any) -> None:
                component_log.debug("%s %s", self.address_string(), format % args)

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
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        bind = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a pod's probes come from outside
        self.httpd = ThreadingHTTPServer((bind, int(port)), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"{component}-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

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
) -> Endpoints | None:
    """Start the endpoints at `args.listen`; None, after a logged error, if it cannot."""
    try:
        endpoints = Endpoints(component, args.listen, ready, collect).start()
    except (OSError, ValueError) as error:
        log.error("failed to listen on %s: %s", args.listen, error)
        return None
    log.info("%s: /healthz, /readyz and /metrics on http://%s", component, endpoints.address)
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
