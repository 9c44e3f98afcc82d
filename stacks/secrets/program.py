"""`platform run secrets`: the secrets controller as a foreground process (pod or laptop).

    platform run secrets [--kubeconfig PATH] [--context NAME]
                         [--server URL --token-file PATH [--ca-file PATH]]
                         [--namespace NS] [--listen HOST:PORT] [--workers N]

Every flag also reads an environment variable (PLATFORM_SECRETS_<FLAG>). GET /healthz
answers 200 while the process serves; GET /readyz once every informer has listed (it
stays 503 while the CRDs are missing); GET /metrics is Prometheus text. SIGTERM
and SIGINT stop it gracefully (exit 0).

Called by `bootstrap.cli.run` (the dispatcher) and the container entrypoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from stacks.errors import PlatformError
from stacks.kube.client import KubeClient
from stacks.kube.events import EventRecorder
from stacks.secrets.api import FIELD_MANAGER
from stacks.secrets.controller import SecretsController

log = logging.getLogger("stacks.secrets")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PLATFORM_SECRETS_{name}", default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="platform run secrets",
        description="The secrets controller: syncs Vault secrets into Kubernetes Secrets.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG") or None,
        help="kubeconfig file (env PLATFORM_SECRETS_KUBECONFIG; default: in-cluster, then $KUBECONFIG)",
    )
    parser.add_argument(
        "--context",
        default=_env("CONTEXT") or None,
        help="kubeconfig context (env PLATFORM_SECRETS_CONTEXT)",
    )
    parser.add_argument(
        "--server",
        default=_env("SERVER") or None,
        help="API server URL, with --token-file (env PLATFORM_SECRETS_SERVER)",
    )
    parser.add_argument(
        "--token-file",
        default=_env("TOKEN_FILE") or None,
        help="bearer token file, e.g. a ServiceAccount token (env PLATFORM_SECRETS_TOKEN_FILE)",
    )
    parser.add_argument(
        "--ca-file",
        default=_env("CA_FILE") or None,
        help="API server CA bundle for --server (env PLATFORM_SECRETS_CA_FILE)",
    )
    parser.add_argument(
        "--namespace",
        default=_env("NAMESPACE") or None,
        help="watch only this namespace (default: all; env PLATFORM_SECRETS_NAMESPACE)",
    )
    parser.add_argument(
        "--listen",
        "--metrics",
        "--healthz",
        dest="listen",
        default=_env("LISTEN", "0.0.0.0:8080"),
        help="HTTP address for /metrics, /healthz and /readyz (env PLATFORM_SECRETS_LISTEN)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "4")),
        help="objects reconciled in parallel (env PLATFORM_SECRETS_WORKERS)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (env PLATFORM_SECRETS_LOG_LEVEL)",
    )
    return parser.parse_args(argv)


def _client(args: argparse.Namespace) -> KubeClient:
    if args.server and args.token_file:
        token = Path(args.token_file).read_text().strip()
        return KubeClient.from_token(args.server, token, args.ca_file)
    return KubeClient.auto(args.kubeconfig, args.context)


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def render_metrics(controller: SecretsController) -> str:
    m = controller.metrics
    runtime = controller.runtime
    lines = [
        f"platform_secrets_syncs_total {m.syncs}",
        f"platform_secrets_sync_errors_total {m.sync_errors}",
        f"platform_secrets_secrets_written_total {m.secrets_written}",
        f"platform_secrets_vault_reads_total {m.vault_reads}",
        f"platform_secrets_reconciles_total {runtime.reconciles}",
        f"platform_secrets_queue_depth {runtime.queue.depth()}",
        f"process_resident_memory_bytes {_rss_bytes()}",
    ]
    return "\n".join(lines) + "\n"


class _Server:
    def __init__(self, address: str, controller: SecretsController) -> None:
        host, _, port = address.rpartition(":")

        class Handler(BaseHTTPRequestHandler):
            server_version = "platform-secrets"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    code, body = 200, "ok\n"
                elif self.path == "/readyz":
                    synced = all(i.synced.is_set() for i in controller.runtime.informers.values())
                    code, body = (
                        (200, "ok\n")
                        if synced and controller.runtime.informers
                        else (503, "starting\n")
                    )
                elif self.path == "/metrics":
                    code, body = 200, render_metrics(controller)
                else:
                    code, body = 404, "not found\n"
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)  # noqa: S104
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="secrets-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "hvac", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        client = _client(args)
    except (PlatformError, OSError) as error:
        log.error("failed to connect to the Kubernetes API: %s", error)
        return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    controller = SecretsController(
        client,
        namespace=args.namespace,
        recorder=EventRecorder(client, FIELD_MANAGER),
        workers=max(1, args.workers),
    )
    try:
        server = _Server(args.listen, controller)
    except OSError as error:
        log.error("failed to listen on %s: %s", args.listen, error)
        return 2
    server.start()
    log.info(
        "secrets controller started (API %s, namespace %s, http %s)",
        client.description,
        args.namespace or "all",
        server.address,
    )
    try:
        controller.run(stop)
    finally:
        server.stop()
        client.close()
        log.info("secrets controller stopped")
    return 0
