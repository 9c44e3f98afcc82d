"""`platform run dns`: the DNS stub as a foreground process (pod or laptop).

    platform run dns [--kubeconfig PATH] [--context NAME] --domain DOMAIN
                     [--default-target IP] [--owner-id ID]
                     [--configmap-namespace NS] [--configmap-name NAME]

Every flag also reads an environment variable (PLATFORM_DNS_<FLAG>). SIGTERM and SIGINT
stop it gracefully (exit code 0). Called by `bootstrap.cli.run` and the container
entrypoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from stacks.dns.controller import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, DnsController, Options
from stacks.errors import PlatformError
from stacks.kube.client import KubeClient
from stacks.kube.events import EventRecorder

log = logging.getLogger("stacks.dns")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PLATFORM_DNS_{name}", default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="platform run dns",
        description="Publishes Ingress/Service/DNSRecord names as CoreDNS hosts entries (k3s coredns-custom).",
    )
    parser.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG") or None,
        help="kubeconfig file (env PLATFORM_DNS_KUBECONFIG; default: in-cluster, then $KUBECONFIG)",
    )
    parser.add_argument(
        "--context",
        default=_env("CONTEXT") or None,
        help="kubeconfig context (env PLATFORM_DNS_CONTEXT)",
    )
    parser.add_argument(
        "--domain",
        default=_env("DOMAIN", "localdev.me"),
        help="the platform's DNS domain; names outside it are ignored (env PLATFORM_DNS_DOMAIN)",
    )
    parser.add_argument(
        "--default-target",
        default=_env("DEFAULT_TARGET"),
        help="address for names whose source has no target annotation and no load-balancer IP, e.g. the ingress Service IP (env PLATFORM_DNS_DEFAULT_TARGET)",
    )
    parser.add_argument(
        "--owner-id",
        default=_env("OWNER_ID", "platform-dns"),
        help="ownership marker of the entries this instance writes (env PLATFORM_DNS_OWNER_ID)",
    )
    parser.add_argument(
        "--configmap-namespace",
        default=_env("CONFIGMAP_NAMESPACE", CONFIGMAP_NAMESPACE),
        help="namespace of the CoreDNS custom ConfigMap (env PLATFORM_DNS_CONFIGMAP_NAMESPACE)",
    )
    parser.add_argument(
        "--configmap-name",
        default=_env("CONFIGMAP_NAME", CONFIGMAP_NAME),
        help="name of the CoreDNS custom ConfigMap (env PLATFORM_DNS_CONFIGMAP_NAME)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (env PLATFORM_DNS_LOG_LEVEL)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        client = KubeClient.auto(args.kubeconfig, args.context)
    except (PlatformError, OSError) as error:
        log.error("failed to connect to the Kubernetes API: %s", error)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
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
    log.info("dns stub started for %s (API %s)", args.domain, client.description)
    # See stacks.certs.program: run the runtime aside so SIGTERM exits promptly.
    runner = threading.Thread(target=controller.runtime.run, args=(stop,), name="dns", daemon=True)
    runner.start()
    while not stop.wait(0.5):
        if not runner.is_alive():
            log.error("the controller runtime stopped unexpectedly")
            return 1
    runner.join(timeout=3)
    log.info("dns stub stopped")
    return 0
