"""`platform run dns`: the DNS stub as a foreground process (pod or laptop).

    platform run dns [--kubeconfig PATH] [--context NAME] --domain DOMAIN
                     [--default-target IP] [--owner-id ID]
                     [--configmap-namespace NS] [--configmap-name NAME]
                     [--listen HOST:PORT] [--leader-elect [--lease-namespace NS]]

Every flag also reads an environment variable (PLATFORM_DNS_<FLAG>). The shared program
shell (stacks/program.py) serves /healthz, /readyz (every informer listed) and /metrics.
SIGTERM and SIGINT stop it gracefully (exit code 0). Called by `bootstrap.cli.run` and the container
entrypoint.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from stacks.dns.controller import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, DnsController, Options
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

log = logging.getLogger("stacks.dns")


def parse_args(argv: list[str]) -> argparse.Namespace:
    options = ProgramOptions(
        "dns",
        "Publishes Ingress/Service/DNSRecord names as CoreDNS hosts entries (k3s coredns-custom).",
    )
    options.add(
        "--domain",
        default="localdev.me",
        help="the platform's DNS domain; names outside it are ignored",
    )
    options.add(
        "--default-target",
        default="",
        help="address for names whose source has no target annotation and no load-balancer IP, e.g. the ingress Service IP",
    )
    options.add(
        "--owner-id",
        default="platform-dns",
        help="ownership marker of the entries this instance writes",
    )
    options.add(
        "--configmap-namespace",
        default=CONFIGMAP_NAMESPACE,
        help="namespace of the CoreDNS custom ConfigMap",
    )
    options.add(
        "--configmap-name", default=CONFIGMAP_NAME, help="name of the CoreDNS custom ConfigMap"
    )
    options.add_endpoints()
    options.add_leader_election("platform-dns")
    return options.parse(argv)


def samples(controller: DnsController) -> Iterator[Sample]:
    """What /metrics shows, read when scraped."""
    yield Sample("platform_dns_syncs", "syncs of the hosts file", controller.syncs, True)
    yield Sample("platform_dns_writes", "writes of the ConfigMap", controller.writes, True)
    yield Sample("platform_dns_sync_errors", "failed syncs", controller.runtime.errors, True)
    yield Sample(
        "platform_dns_queue_depth", "keys waiting in the queue", controller.runtime.queue.depth()
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    client = connect(args)
    if client is None:
        return 2
    stop = stop_on_signals()
    controller = DnsController(
        client,
        Options(
            domain=args.domain,
            default_target=args.default_target,
            owner_id=args.owner_id,
            configmap_namespace=args.configmap_namespace,
            configmap_name=args.configmap_name,
        ),
        EventRecorder(client, "platform-dns"),
    )
    endpoints = serve_endpoints(args, "dns", controller.runtime.synced, lambda: samples(controller))
    if endpoints is None:
        return 2
    log.info("dns stub started for %s (API %s)", args.domain, client.description)
    try:
        controller.runtime.run(stop, leader_for(args, client, "dns"))
    finally:
        endpoints.stop()
    log.info("dns stub stopped")
    return 0
