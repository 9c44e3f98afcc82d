"""`platform run unsealer`: keep a Vault unsealed after restarts.

Docker restarts and laptop sleep seal Vault; this program polls its seal status every
`--interval` seconds (2 by default) and, when it finds it initialised but sealed,
unseals it with the stored keys. The keys come from a file (`--keys-file`, the `vault`
stage's vault-init.json) or from the Kubernetes Secret `platform-vault/vault-init`
(`--secret`, in the cluster or with `--kubeconfig`); they are read again at every unseal,
so a rotated Secret is picked up, and are never logged.

Called by the `platform run` dispatcher (bootstrap/cli/run.py) as `main(argv)`; the
Deployment in manifests/ runs the same command. Flags, environment variables
(PLATFORM_UNSEALER_<FLAG>) and the /healthz, /readyz and /metrics endpoint (`--listen`)
come from the shared program shell (stacks/program.py). SIGTERM and SIGINT stop it
between polls.
Exit codes: 0 after a graceful stop, 2 for a configuration a person must fix.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.program import (
    ProgramOptions,
    Sample,
    configure_logging,
    serve_endpoints,
    stop_on_signals,
)
from stacks.vault.api import UnsealFailed, VaultApi
from stacks.vault.keys import NAMESPACE, SECRET_NAME, InitKeys

log = logging.getLogger("platform.unsealer")


class KeySource(Protocol):
    def load(self) -> InitKeys: ...

    def describe(self) -> str: ...


class FileKeys:
    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def load(self) -> InitKeys:
        try:
            text = self.path.read_text()
        except OSError as error:
            raise PermanentError(
                f"cannot read the unseal keys file {self.path}: {error.strerror}",
                hint="point --keys-file at the vault-init.json written by `platform up`",
            ) from None
        return InitKeys.from_json(text, str(self.path))


class SecretKeys:
    def __init__(self, namespace: str, name: str, kubeconfig: str | None) -> None:
        self.namespace, self.name, self.kubeconfig = namespace, name, kubeconfig
        self._client: object | None = None

    def describe(self) -> str:
        return f"Secret '{self.namespace}/{self.name}'"

    def load(self) -> InitKeys:
        from stacks.kube.client import KubeClient

        if not isinstance(self._client, KubeClient):
            self._client = KubeClient.auto(self.kubeconfig)
        client = self._client
        assert isinstance(client, KubeClient)
        secret = client.get("v1", "Secret", self.name, self.namespace)
        if secret is None:
            raise PermanentError(
                f"the {self.describe()} does not exist",
                hint="run `platform up` again: the vault stage creates it",
            )
        return InitKeys.from_secret_data(dict(secret.get("data") or {}), self.describe())


class Unsealer:
    """One poll: look at the seal status and unseal when needed."""

    def __init__(self, api: VaultApi, keys: KeySource) -> None:
        self.api, self.keys = api, keys
        self.last = ""
        self.checks = 0
        self.unseals = 0

    def poll(self) -> str:
        """Returns what it saw or did: "unsealed", "unsealed now", "uninitialised", ..."""
        status = self.api.status()
        if not status.initialized:
            return "uninitialised"
        if not status.sealed:
            return "unsealed"
        keys = self.keys.load()
        self.api.unseal(keys.keys)
        return "unsealed now"

    def step(self) -> str:
        self.checks += 1
        try:
            outcome = self.poll()
        except UnsealFailed as error:
            outcome = f"failed: {error}"
            if outcome != self.last:
                log.error("failed to unseal Vault %s: %s (%s)", self.api.address, error, error.hint)
        except WaitingError as error:
            outcome = f"waiting: {error}"
        except PlatformError as error:
            outcome = f"error: {error}"
            if outcome != self.last:
                log.warning("failed to check Vault %s: %s", self.api.address, error)
        if outcome == "unsealed now":
            self.unseals += 1
            log.info("unsealed Vault %s with keys from %s", self.api.address, self.keys.describe())
        elif outcome != self.last and not outcome.startswith(("failed", "error")):
            log.info("Vault %s: %s", self.api.address, outcome)
        self.last = outcome
        return outcome


def run_loop(
    unsealer: Unsealer,
    stop: threading.Event,
    interval: float,
    on_step: Callable[[str], None] | None = None,
) -> None:
    while not stop.is_set():
        outcome = unsealer.step()
        if on_step is not None:
            on_step(outcome)
        stop.wait(interval)


def parse_args(argv: list[str]) -> argparse.Namespace:
    # The shared program shell; the names the unsealer read before it (VAULT_ADDR,
    # KUBECONFIG, PLATFORM_LOG_LEVEL) still work, after the PLATFORM_UNSEALER_* ones.
    options = ProgramOptions(
        "unsealer",
        "Unseal Vault/OpenBao from stored keys whenever it is found sealed.",
        kube=False,
        log_level=False,
    )
    options.add("--address", help="Vault address, e.g. http://vault:8200", legacy_env="VAULT_ADDR")
    options.add("--keys-file", type=Path, help="JSON file with the unseal keys")
    options.add("--secret", help=f"read the keys from this Secret (e.g. {SECRET_NAME})")
    options.add("--namespace", default=NAMESPACE, help="namespace of --secret")
    options.add(
        "--kubeconfig", help="kubeconfig when run outside the cluster", legacy_env="KUBECONFIG"
    )
    options.add("--interval", type=float, default=2.0, help="seconds between seal checks")
    options.parser.add_argument(
        "--once", action="store_true", help="check (and unseal) once, then exit"
    )
    options.add_endpoints()
    options.add(
        "--log-level", default="INFO", help="logging level", legacy_env="PLATFORM_LOG_LEVEL"
    )
    return options.parse(argv)


def samples(unsealer: Unsealer) -> Iterator[Sample]:
    """What /metrics shows, read when scraped."""
    yield Sample("platform_unsealer_checks", "seal status checks", unsealer.checks, True)
    yield Sample("platform_unsealer_unseals", "unseals done", unsealer.unseals, True)
    reachable = unsealer.last in ("unsealed", "unsealed now")
    yield Sample(
        "platform_unsealer_vault_unsealed",
        "1 when Vault was unsealed at the last check",
        float(reachable),
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    if not args.address:
        print("platform run unsealer: give --address (or VAULT_ADDR).", file=sys.stderr)
        return 2
    source: KeySource
    if args.keys_file:
        source = FileKeys(args.keys_file)
    elif args.secret:
        source = SecretKeys(args.namespace, args.secret, args.kubeconfig)
    else:
        print("platform run unsealer: give --keys-file FILE or --secret NAME.", file=sys.stderr)
        return 2
    unsealer = Unsealer(VaultApi(args.address), source)
    if args.once:
        outcome = unsealer.step()
        return 0 if outcome in ("unsealed", "unsealed now", "uninitialised") else 1

    stop = stop_on_signals()
    # Ready once a check has run: the pod's job is to keep looking, sealed or not.
    endpoints = serve_endpoints(
        args, "unsealer", lambda: unsealer.checks > 0, lambda: samples(unsealer)
    )
    if endpoints is None:
        return 2
    log.info(
        "watching Vault %s every %.1fs; keys from %s",
        args.address,
        args.interval,
        source.describe(),
    )
    try:
        run_loop(unsealer, stop, args.interval)
    finally:
        endpoints.stop()
    return 0
