"""`platform run secrets`: the secrets controller as a foreground process (pod or laptop).

    platform run secrets [--kubeconfig PATH] [--context NAME]
                         [--server URL --token-file PATH [--ca-file PATH]]
                         [--namespace NS] [--listen HOST:PORT] [--workers N]
                         [--leader-elect [--lease-namespace NS]]

Every flag also reads an environment variable (PLATFORM_SECRETS_<FLAG>). The shared
program shell (stacks/program.py) serves GET /healthz (200 while the process serves),
/readyz (200 once every informer has listed; 503 while the CRDs are missing) and
/metrics (Prometheus text). SIGTERM and SIGINT stop it gracefully (exit 0).

Called by `bootstrap.cli.run` (the dispatcher) and the container entrypoint.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from stacks.kube.events import EventRecorder
from stacks.program import (
    ProgramOptions,
    Sample,
    configure_logging,
    connect,
    leader_for,
    serve_endpoints,
    stop_on_signals,
)
from stacks.secrets.api import FIELD_MANAGER
from stacks.secrets.controller import SecretsController
from stacks.secrets.install import NAMESPACE

log = logging.getLogger("stacks.secrets")


def parse_args(argv: list[str]) -> argparse.Namespace:
    options = ProgramOptions(
        "secrets",
        "The secrets controller: syncs Vault secrets into Kubernetes Secrets.",
        token_auth=True,
    )
    options.add("--namespace", help="watch only this namespace (default: all)")
    options.add_endpoints(default="0.0.0.0:8080", aliases=("--metrics", "--healthz"))
    options.add("--workers", type=int, default=4, help="objects reconciled in parallel")
    options.add_leader_election(NAMESPACE)
    return options.parse(argv)


def samples(controller: SecretsController) -> Iterator[Sample]:
    """What /metrics shows, read when scraped."""
    counters, runtime = controller.counters, controller.runtime
    yield Sample("platform_secrets_syncs", "ExternalSecret syncs", counters.syncs, True)
    yield Sample(
        "platform_secrets_sync_errors", "failed ExternalSecret syncs", counters.sync_errors, True
    )
    yield Sample(
        "platform_secrets_secrets_written",
        "Secrets created or updated",
        counters.secrets_written,
        True,
    )
    yield Sample("platform_secrets_vault_reads", "Vault reads", counters.vault_reads, True)
    yield Sample("platform_secrets_reconciles", "reconciles of any key", runtime.reconciles, True)
    yield Sample("platform_secrets_queue_depth", "keys waiting in the queue", runtime.queue.depth())


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
    endpoints = serve_endpoints(
        args, "secrets", controller.runtime.synced, lambda: samples(controller)
    )
    if endpoints is None:
        return 2
    log.info(
        "secrets controller started (API %s, namespace %s, http %s)",
        client.description,
        args.namespace or "all",
        endpoints.address,
    )
    try:
        controller.run(stop, leader_for(args, client, "secrets"))
    finally:
        endpoints.stop()
        client.close()
        log.info("secrets controller stopped")
    return 0
