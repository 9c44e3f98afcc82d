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
import os
import signal
import sys
import threading
from types import FrameType

from stacks.certs.controller import CertsController, Options
from stacks.errors import PlatformError
from stacks.kube.client import KubeClient
from stacks.kube.events import EventRecorder

log = logging.getLogger("stacks.certs")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PLATFORM_CERTS_{name}", default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="platform run certs",
        description="Issues certificates from Issuers/ClusterIssuers into kubernetes.io/tls Secrets.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG") or None,
        help="kubeconfig file (env PLATFORM_CERTS_KUBECONFIG; default: in-cluster, then $KUBECONFIG)",
    )
    parser.add_argument(
        "--context",
        default=_env("CONTEXT") or None,
        help="kubeconfig context (env PLATFORM_CERTS_CONTEXT)",
    )
    parser.add_argument(
        "--cluster-resource-namespace",
        default=_env("CLUSTER_RESOURCE_NAMESPACE", "platform-certs"),
        help="namespace of ClusterIssuer CA Secrets (env PLATFORM_CERTS_CLUSTER_RESOURCE_NAMESPACE)",
    )
    parser.add_argument(
        "--watch-namespace",
        default=_env("WATCH_NAMESPACE") or None,
        help="only this namespace (default: all; env PLATFORM_CERTS_WATCH_NAMESPACE)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "4")),
        help="parallel reconciles (env PLATFORM_CERTS_WORKERS)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (env PLATFORM_CERTS_LOG_LEVEL)",
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
    # The runtime joins each informer thread for up to 5 s, and a thread blocked in a
    # watch stream only notices the stop at its next event; run it aside and give the
    # workers a short grace instead, so SIGTERM exits promptly.
    runner = threading.Thread(
        target=controller.runtime.run, args=(stop,), name="certs", daemon=True
    )
    runner.start()
    while not stop.wait(0.5):
        if not runner.is_alive():
            log.error("the controller runtime stopped unexpectedly")
            return 1
    runner.join(timeout=3)
    log.info("certs controller stopped")
    return 0
