"""`platform run reconciler`: the reconciler as a foreground process (pod or laptop).

    platform run reconciler [--kubeconfig PATH] [--context NAME]
                            [--server URL --token-file PATH [--ca-file PATH]]
                            [--namespace NS] [--watch-namespace NS] [--listen HOST:PORT]
                            [--webhook-secret-file PATH] [--git-credentials-file PATH]
                            [--cache-dir DIR] [--workers N] [--no-leader-elect]

Every flag also reads an environment variable (PLATFORM_RECONCILER_<FLAG>). SIGTERM and
SIGINT stop it gracefully: the queue drains, the Lease is released, exit code 0. Losing
the Lease exits 1 so the pod restarts as a follower.

Called by `bootstrap.cli.run` (the dispatcher) and the container entrypoint.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import uuid
from pathlib import Path

from stacks.errors import PlatformError
from stacks.kube.client import KubeClient
from stacks.kube.events import EventRecorder
from stacks.kube.leader import LeaderElector
from stacks.program import (
    ProgramOptions,
    configure_logging,
    connect,
    serve_endpoints,
    stop_on_signals,
)
from stacks.reconciler.controller import AppController, Options
from stacks.reconciler.metrics import ReconcilerMetrics
from stacks.reconciler.server import Webhook

log = logging.getLogger("stacks.reconciler")


def parse_args(argv: list[str]) -> argparse.Namespace:
    options = ProgramOptions(
        "reconciler",
        "The GitOps reconciler: keeps the cluster equal to git for every Application.",
        token_auth=True,
    )
    options.add(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE") or "platform-system",
        help="namespace of the leader Lease and of the AppProjects",
    )
    options.add("--watch-namespace", help="only Applications in this namespace (default: all)")
    options.add(
        "--listen",
        default="0.0.0.0:8080",
        help="HTTP address for /webhook, /healthz, /readyz and /metrics",
    )
    options.add("--webhook-secret-file", help="file with the push webhook's HMAC secret")
    options.add(
        "--git-credentials-file",
        help="git-credentials file (https://user:password@host per line)",
    )
    options.add(
        "--cache-dir",
        default=str(Path.home() / ".cache" / "platform-reconciler"),
        help="git cache directory",
    )
    # 8: a reconcile mostly waits on the API server (apply, status), so 100 Applications
    # changed by one push are applied in about half the time 4 take (bench/README.md).
    options.add("--workers", type=int, default=8, help="Applications reconciled in parallel")
    options.add_switch("--leader-elect", default=True, help="take a Lease before acting")
    options.add_switch(
        "--projects",
        default=True,
        help="enforce AppProjects (found in --namespace) and apply as their ServiceAccounts; "
        "--no-projects applies everything as the reconciler (tests and local development only)",
    )
    options.add("--lease-name", default="platform-reconciler", help="name of the Lease")
    return options.parse(argv)


def _label_leader_pod(client: KubeClient, namespace: str, leader: bool) -> None:
    """In a pod, (un)label it as the leader so the webhook Service routes to the leader."""
    pod = os.environ.get("POD_NAME")
    if not pod:
        return
    value = "true" if leader else None
    try:
        client.merge_patch(
            "v1",
            "Pod",
            pod,
            {"metadata": {"labels": {"gitops.platform.local/leader": value}}},
            namespace,
        )
    except PlatformError as error:
        log.warning("failed to label Pod '%s/%s': %s", namespace, pod, error)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    client = connect(args)
    if client is None:
        return 2
    warned: list[bool] = []

    def webhook_secret() -> bytes:
        if args.webhook_secret_file:
            try:
                return Path(args.webhook_secret_file).read_bytes().strip()
            except FileNotFoundError:
                if not warned:
                    warned.append(True)
                    log.warning(
                        "no webhook secret at %s: push webhooks are refused (the interval still syncs)",
                        args.webhook_secret_file,
                    )
                return b""
        return os.environ.get("PLATFORM_WEBHOOK_SECRET", "").encode()

    stop = stop_on_signals()

    metrics = ReconcilerMetrics()
    options = Options(
        cache_dir=Path(args.cache_dir),
        watch_namespace=args.watch_namespace,
        workers=max(1, args.workers),
        credentials_file=Path(args.git_credentials_file) if args.git_credentials_file else None,
        projects=args.projects,
        project_namespace=args.namespace,
    )
    controller = AppController(
        client, options, metrics, EventRecorder(client, "platform-reconciler")
    )
    leading = threading.Event()
    webhook = Webhook(webhook_secret, lambda: controller.on_push if leading.is_set() else None)
    # /readyz: a follower is ready (to take over); the leader once its caches listed.
    server = serve_endpoints(
        args,
        "reconciler",
        ready=lambda: not leading.is_set() or controller.runtime.synced(),
        posts={"/webhook": webhook},
        collectors=[metrics],
    )
    if server is None:
        client.close()
        return 2
    metrics.gauges["leader"] = lambda: 1.0 if leading.is_set() else 0.0

    elector: LeaderElector | None = None

    def on_lead() -> None:  # the Lease is held (or not asked for): act from now on
        if elector is not None:
            _label_leader_pod(client, args.namespace, leader=True)
        leading.set()
        log.info("reconciler started (API %s)", client.description)

    try:
        if args.leader_elect:
            identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
            elector = LeaderElector(client, args.namespace, args.lease_name, identity)
            _label_leader_pod(client, args.namespace, leader=False)
        # Blocks until SIGTERM/SIGINT or a lost Lease (which sets `stop`); the Runtime
        # releases the Lease after its workers stopped.
        controller.run(stop, elector, on_lead)
    finally:
        stop.set()
        leading.clear()
        controller.close()
        server.stop()
        client.close()
        log.info("reconciler stopped")
    return 1 if elector is not None and elector.lost.is_set() else 0
