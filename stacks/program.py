"""What every `platform run <component>` program shares: flags that also read environment
variables, logging with the secret filter, the API connection, and stopping on signals.

Used by the programs of the reconciler, secrets, certs, dns, the git server and the
unsealer, so each program module holds only its own flags and its own start-up.

    options = ProgramOptions("certs", "Issues certificates ...")
    options.add("--workers", type=int, default=4, help="parallel reconciles")
    args = options.parse(argv)            # --workers also reads PLATFORM_CERTS_WORKERS
    configure_logging(args.log_level)
    client = connect(args)                # None (after a logged error) when unreachable
    stop = stop_on_signals()              # SIGTERM/SIGINT set it
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from stacks.errors import PlatformError
from stacks.redact import RedactingFilter

if TYPE_CHECKING:  # the git server needs no Kubernetes client: import it only to connect
    from stacks.kube.client import KubeClient

log = logging.getLogger("stacks.program")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class ProgramOptions:
    """An argparse parser whose every option also reads PLATFORM_<COMPONENT>_<OPTION>."""

    def __init__(
        self, component: str, description: str, kube: bool = True, token_auth: bool = False
    ) -> None:
        self.prefix = f"PLATFORM_{component.upper()}_"
        self.parser = argparse.ArgumentParser(
            prog=f"platform run {component}", description=description
        )
        if kube:
            self.add("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
            self.add("--context", help="kubeconfig context")
        if token_auth:
            self.add("--server", help="API server URL, with --token-file")
            self.add("--token-file", help="bearer token file, e.g. a ServiceAccount token")
            self.add("--ca-file", help="API server CA bundle for --server")
        self.add("--log-level", default="INFO", help="DEBUG, INFO, WARNING")

    def env_name(self, flag: str) -> str:
        return self.prefix + flag.lstrip("-").upper().replace("-", "_")

    def env(self, flag: str) -> str | None:
        return os.environ.get(self.env_name(flag))

    def add(self, flag: str, *aliases: str, default: Any = None, help: str, **kwargs: Any) -> None:
        """An option whose default comes from its environment variable when that is set."""
        raw = self.env(flag)
        if raw is not None and raw != "":
            convert = kwargs.get("type", str)
            default = convert(raw)
        self.parser.add_argument(
            flag, *aliases, default=default, help=f"{help} (env {self.env_name(flag)})", **kwargs
        )

    def add_switch(self, flag: str, default: bool, help: str) -> None:
        """A --flag/--no-flag switch; its environment variable takes true/false words."""
        raw = self.env(flag)
        if raw is not None and raw != "":
            default = raw.strip().lower() in TRUE_WORDS
        self.parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=default,
            help=f"{help} (env {self.env_name(flag)})",
        )

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.parser.parse_args(argv)


def configure_logging(level: str, quiet: tuple[str, ...] = ("urllib3",)) -> None:
    """Log lines to stderr through the secret filter; chatty libraries at WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def connect(args: argparse.Namespace) -> KubeClient | None:
    """The API client the flags describe (token, kubeconfig or in-cluster); None, after
    logging why, when it cannot be built."""
    from stacks.kube.client import KubeClient

    try:
        if getattr(args, "server", None) and getattr(args, "token_file", None):
            token = Path(args.token_file).read_text().strip()
            return KubeClient.from_token(args.server, token, args.ca_file)
        return KubeClient.auto(args.kubeconfig, args.context)
    except (PlatformError, OSError) as error:
        log.error("failed to connect to the Kubernetes API: %s", error)
        return None


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set: the program's graceful stop."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
