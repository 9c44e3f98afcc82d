"""`platform run certs`: the certificate controller as a foreground process (pod or laptop).

    platform run certs [--kubeconfig PATH] [--context NAME]
                       [--cluster-resource-namespace NS] [--watch-namespace NS] [--workers N]

Every flag also reads an environment variable (PLATFORM_CERTS_<FLAG>). SIGTERM and SIGINT
stop it gracefully (exit code 0). Called by `bootstrap.cli.run` and the container
entrypoint.
"""

from __future__ import annotations

import argparse
import logging

from stacks.certs.controller import CertsController, Options
from stacks.kube.events import EventRecorder
from stacks.program import ProgramOptions, configure_logging, connect, stop_on_signals

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
    return options.parse(argv)


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
    log.info("certs controller started (API %s)", client.description)
    controller.runtime.run(stop)
    log.info("certs controller stopped")
    return 0
