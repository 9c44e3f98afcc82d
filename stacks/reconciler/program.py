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
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

from stacks.errors import PlatformError
from stacks.kube.client import KubeClient
from stacks.kube.events import EventRecorder
from stacks.kube.leader import LeaderElector
from stacks.reconciler.controller import Controller, Options
from stacks.reconciler.metrics import Metrics
from stacks.reconciler.server import Server

log = logging.getLogger("stacks.reconciler")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"PLATFORM_RECONCILER_{name}", default)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="platform run reconciler",
        description="The GitOps reconciler: keeps the cluster equal to git for every Application.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG") or None,
        help="kubeconfig file (env PLATFORM_RECONCILER_KUBECONFIG; default: in-cluster, then $KUBECONFIG)",
    )
    parser.add_argument(
        "--context",
        default=_env("CONTEXT") or None,
        help="kubeconfig context (env PLATFORM_RECONCILER_CONTEXT)",
    )
    parser.add_argument(
        "--server",
        default=_env("SERVER") or None,
        help="API server URL, with --token-file (env PLATFORM_RECONCILER_SERVER)",
    )
    parser.add_argument(
        "--token-file",
        default=_env("TOKEN_FILE") or None,
        help="bearer token file, e.g. a ServiceAccount token (env PLATFORM_RECONCILER_TOKEN_FILE)",
    )
    parser.add_argument(
        "--ca-file",
        default=_env("CA_FILE") or None,
        help="API server CA bundle for --server (env PLATFORM_RECONCILER_CA_FILE)",
    )
    parser.add_argument(
        "--namespace",
        default=_env("NAMESPACE") or os.environ.get("POD_NAMESPACE") or "platform-system",
        help="namespace of the leader Lease (env PLATFORM_RECONCILER_NAMESPACE)",
    )
    parser.add_argument(
        "--watch-namespace",
        default=_env("WATCH_NAMESPACE") or None,
        help="only Applications in this namespace (default: all; env PLATFORM_RECONCILER_WATCH_NAMESPACE)",
    )
    parser.add_argument(
        "--listen",
        default=_env("LISTEN", "0.0.0.0:8080"),
        help="HTTP address for /webhook, /metrics, /healthz (env PLATFORM_RECONCILER_LISTEN)",
    )
    parser.add_argument(
        "--webhook-secret-file",
        default=_env("WEBHOOK_SECRET_FILE") or None,
        help="file with the push webhook's HMAC secret (env PLATFORM_RECONCILER_WEBHOOK_SECRET_FILE)",
    )
    parser.add_argument(
        "--git-credentials-file",
        default=_env("GIT_CREDENTIALS_FILE") or None,
        help="git-credentials file (https://user:password@host per line; env PLATFORM_RECONCILER_GIT_CREDENTIALS_FILE)",
    )
    parser.add_argument(
        "--cache-dir",
        default=_env("CACHE_DIR") or str(Path.home() / ".cache" / "platform-reconciler"),
        help="git cache directory (env PLATFORM_RECONCILER_CACHE_DIR)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "4")),
        help="Applications reconciled in parallel (env PLATFORM_RECONCILER_WORKERS)",
    )
    parser.add_argument(
        "--leader-elect",
        dest="leader_elect",
        action=argparse.BooleanOptionalAction,
        default=_env("LEADER_ELECT", "true") != "false",
        help="take a Lease before acting (env PLATFORM_RECONCILER_LEADER_ELECT)",
    )
    parser.add_argument(
        "--lease-name",
        default=_env("LEASE_NAME", "platform-reconciler"),
        help="name of the Lease (env PLATFORM_RECONCILER_LEASE_NAME)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING (env PLATFORM_RECONCILER_LOG_LEVEL)",
    )
    return parser.parse_args(argv)


def _client(args: argparse.Namespace) -> KubeClient:
    if args.server and args.token_file:
        token = Path(args.token_file).read_text().strip()
        return KubeClient.from_token(args.server, token, args.ca_file)
    return KubeClient.auto(args.kubeconfig, args.context)


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
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        client = _client(args)
    except (PlatformError, OSError) as error:
        log.error("failed to connect to the Kubernetes API: %s", error)
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

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    metrics = Metrics()
    options = Options(
        cache_dir=Path(args.cache_dir),
        watch_namespace=args.watch_namespace,
        workers=max(1, args.workers),
        credentials_file=Path(args.git_credentials_file) if args.git_credentials_file else None,
    )
    controller: Controller | None = None
    leading = threading.Event()
    host, _, port = str(args.listen).rpartition(":")
    server = Server(
        host or "0.0.0.0",  # noqa: S104 - a pod listens on all interfaces
        int(port),
        webhook_secret,
        metrics.render,
        lambda: controller.on_push if controller is not None and leading.is_set() else None,
    )
    server.start()
    log.info("listening on %s:%d (/webhook, /metrics, /healthz)", host or "0.0.0.0", server.port)  # noqa: S104
    metrics.gauges["leader"] = lambda: 1.0 if leading.is_set() else 0.0

    elector: LeaderElector | None = None
    code = 0
    try:
        if args.leader_elect:
            identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
            elector = LeaderElector(client, args.namespace, args.lease_name, identity)
            _label_leader_pod(client, args.namespace, leader=False)
            if not elector.acquire(stop):
                return 0
            threading.Thread(
                target=elector.renew_forever, args=(stop,), name="lease", daemon=True
            ).start()
            _label_leader_pod(client, args.namespace, leader=True)
        leading.set()
        controller = Controller(
            client, options, metrics, EventRecorder(client, "platform-reconciler")
        )
        controller.start()
        log.info("reconciler started (API %s)", client.description)
        while not stop.wait(0.5):
            if elector is not None and elector.lost.is_set():
                code = 1
                break
    finally:
        stop.set()
        leading.clear()
        if controller is not None:
            controller.stop()
        if elector is not None and code == 0:
            elector.release()
        server.stop()
        client.close()
        log.info("reconciler stopped")
    return code
