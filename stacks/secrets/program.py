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
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from stacks.kube.events import EventRecorder
from stacks.program import ProgramOptions, configure_logging, connect, stop_on_signals
from stacks.secrets.api import FIELD_MANAGER
from stacks.secrets.controller import SecretsController

log = logging.getLogger("stacks.secrets")


def parse_args(argv: list[str]) -> argparse.Namespace:
    options = ProgramOptions(
        "secrets",
        "The secrets controller: syncs Vault secrets into Kubernetes Secrets.",
        token_auth=True,
    )
    options.add("--namespace", help="watch only this namespace (default: all)")
    options.add(
        "--listen",
        "--metrics",
        "--healthz",
        dest="listen",
        default="0.0.0.0:8080",
        help="HTTP address for /metrics, /healthz and /readyz",
    )
    options.add("--workers", type=int, default=4, help="objects reconciled in parallel")
    return options.parse(argv)


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
                    synced = all(i.listed.is_set() for i in controller.runtime.informers.values())
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
    configure_logging(args.log_level, quiet=("urllib3", "hvac", "requests"))
    client = connect(args)
    if client is None:
        return 2
    stop = stop_on_signals()

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
