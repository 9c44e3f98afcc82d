"""`platform run certs`: the certificate controller as a foreground process (pod or laptop).

    platform run certs [--kubeconfig PATH] [--context NAME]
                       [--cluster-resource-namespace NS] [--watch-namespace NS] [--workers N]
                       [--listen HOST:PORT] [--leader-elect [--lease-namespace NS]]

Every flag also reads an environment variable (PLATFORM_CERTS_<FLAG>). The shared program
shell (stacks/program.py) serves /healthz, /readyz (every informer listed) and /metrics.
SIGTERM and SIGINT stop it gracefully (exit code 0). Called by `bootstrap.cli.run` and the container
entrypoint.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from stacks.certs.controller import CertsController, Options
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

log = logging.getLogger("stacks.certs")


def parse_args(argv: list[str]) -> argparse.Namespace:
    options = ProgramOptions(
        "certs", "Issues certificates from Issuers/ClusterIssuers into kubernetes.io/tls Secrets."
    )
    options.add(
        "--cluster-resource-namespace",
        default="platform-certs",
        help="namespace of ClusterIssuer CA Secrets",
    )
    options.add("--watch-namespace", help="only this namespace (default: all)")
    options.add("--workers", type=int, default=4, help="parallel reconciles")
    options.add_endpoints()
    options.add_leader_election("platform-certs")
    return options.parse(argv)


def samples(controller: CertsController) -> Iterator[Sample]:
    """What /metrics shows, read when scraped."""
    runtime = controller.runtime
    yield Sample("platform_certs_issued", "certificates issued", controller.issued, True)
    yield Sample("platform_certs_reconciles", "reconciles of any key", runtime.reconciles, True)
    yield Sample("platform_certs_reconcile_errors", "failed reconciles", runtime.errors, True)
    yield Sample("platform_certs_queue_depth", "keys waiting in the queue", runtime.queue.depth())


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    client = connect(args)
    if client is None:
        return 2
    stop = stop_on_signals()
    controller = CertsController(
        client,
        Options(
            cluster_resource_namespace=args.cluster_resource_namespace,
            workers=max(1, args.workers),
            watch_namespace=args.watch_namespace,
        ),
        EventRecorder(client, "platform-certs"),
    )
    endpoints = serve_endpoints(
        args, "certs", controller.runtime.synced, lambda: samples(controller)
    )
    if endpoints is None:
        return 2
    log.info("certs controller started (API %s)", client.description)
    try:
        controller.runtime.run(stop, leader_for(args, client, "certs"))
    finally:
        endpoints.stop()
    log.info("certs controller stopped")
    return 0
