"""Stage 6, `vault`: Vault/OpenBao reachable, initialised, unsealed, keys stored.

Without `vault.address` the stage first deploys stacks/vault/manifests/ (OpenBao on raft,
its Ingress, the unsealer) and waits for the API. Then, for either kind of Vault:

- not initialised: initialise with `vault.key_shares`/`vault.key_threshold`; store the
  keys and root token in secrets/vault-init.json (0600) and, when the cluster answers,
  in the Secret `platform-vault/vault-init` that the unsealer reads;
- sealed: unseal with the stored keys (that file, `vault.unseal_keys_file`, or the
  Secret); none anywhere is a PermanentError that says what happened and what to do;
- then verify it is active and the stored token works.

Keys and tokens are registered with stacks.redact as they are read or created and
never appear in progress lines, logs or exceptions. Called by the stage runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bootstrap.images import COMPONENT_IMAGE, OPENBAO_IMAGE
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.vault_access import (
    access_problem,
    deploys_vault,
    people_vault_address,
    vault_address,
)
from bootstrap.vault_init import PENDING_SUFFIX
from stacks import redact
from stacks.errors import PermanentError, PlatformError, TransientError, WaitingError
from stacks.kube.diagnose import with_cause
from stacks.manifests import component_manifests
from stacks.vault.api import SealStatus, VaultApi
from stacks.vault.keys import FILE_NAME, NAMESPACE, SECRET_NAME, InitKeys

FIELD_MANAGER = "platform-bootstrap"


def stored_keys(ctx: StageContext, include_cluster: bool = True) -> tuple[InitKeys | None, str]:
    """The unseal keys from the state dir, the settings' keys file, or the cluster Secret."""
    text = ctx.state.read_secret(FILE_NAME)
    if text is not None:
        return InitKeys.from_json(text, str(ctx.state.secrets_dir / FILE_NAME)), "state"
    if ctx.settings.vault.unseal_keys_file:
        path = Path(ctx.settings.vault.unseal_keys_file).expanduser()
        try:
            return InitKeys.from_json(path.read_text(), str(path)), "file"
        except OSError as error:
            raise PermanentError(
                f"cannot read vault.unseal_keys_file {path}: {error.strerror}",
                hint="fix the path in vault.unseal_keys_file (or PLATFORM_VAULT_UNSEAL_KEYS_FILE)",
            ) from None
    if include_cluster:
        try:
            secret = ctx.kube().get("v1", "Secret", SECRET_NAME, NAMESPACE)
        except PlatformError as error:
            ctx.log.info("cannot look for Secret %s/%s: %s", NAMESPACE, SECRET_NAME, error)
            secret = None
        if secret is not None:
            source = f"Secret '{NAMESPACE}/{SECRET_NAME}'"
            return InitKeys.from_secret_data(dict(secret.get("data") or {}), source), "cluster"
    return None, ""


def vault_token(ctx: StageContext) -> str:
    """A token for configuring Vault: `vault.token_file`, else the stored root token."""
    if ctx.settings.vault.token_file:
        path = Path(ctx.settings.vault.token_file).expanduser()
        try:
            token = path.read_text().strip()
        except OSError as error:
            raise PermanentError(
                f"cannot read vault.token_file {path}: {error.strerror}",
                hint="fix the path in vault.token_file (or PLATFORM_VAULT_TOKEN_FILE)",
            ) from None
        redact.register(token)
        return token
    keys, _ = stored_keys(ctx)
    if keys is None or not keys.root_token:
        raise PermanentError(
            "there is no Vault token: no vault.token_file is set and no root token was stored "
            "when Vault was initialised",
            hint="set vault.token_file to a file holding a token with admin rights",
        )
    return keys.root_token


class VaultStage:
    name = "vault"
    description = "initialise and unseal Vault (OpenBao); store its keys"
    requires: tuple[str, ...] = ("cluster",)

    def timeout(self, ctx: StageContext) -> float:
        return max(ctx.settings.stage_timeout, 300.0)

    def check(self, ctx: StageContext) -> CheckResult:
        try:
            status = VaultApi(vault_address(ctx.settings, ctx.kube)).status()
        except PlatformError as error:
            return CheckResult(False, str(error))
        done = status.initialized and not status.sealed
        return CheckResult(done, f"Vault {status.describe()}")

    def plan(self, ctx: StageContext) -> list[str]:
        lines = []
        if deploys_vault(ctx.settings):
            lines.append(f"deploy OpenBao ({OPENBAO_IMAGE}) and the unsealer to {NAMESPACE}")
        status: SealStatus | None = None
        try:
            address = vault_address(ctx.settings, ctx.kube)
            status = VaultApi(address).status()
        except PlatformError:
            address = "Vault"  # not reachable yet (not deployed, or no cluster yet)
        if status is None or not status.initialized:
            lines.append(
                f"initialise Vault at {address} ({ctx.settings.vault.key_shares} key shares, "
                f"threshold {ctx.settings.vault.key_threshold}); store the keys"
            )
        if status is None or status.sealed:
            lines.append(f"unseal Vault at {address}")
        return lines or [f"nothing: Vault at {address} is {status.describe() if status else ''}"]

    def remove(self, ctx: StageContext) -> str:
        """`platform down` (engine existing): delete the namespace this stage created and
        wait until it is gone, so the cluster is left as it was found. The Vault itself,
        when it is an external one (vault.address), is not touched."""
        client = ctx.kube()
        if client.get("v1", "Namespace", NAMESPACE) is None:
            return ""
        client.delete("v1", "Namespace", NAMESPACE)
        for _ in range(120):
            if client.get("v1", "Namespace", NAMESPACE) is None:
                return f"deleted namespace {NAMESPACE}"
            ctx.wait(0.5)
        raise TransientError(f"namespace {NAMESPACE} is still terminating after 60s")

    def run(self, ctx: StageContext) -> str:
        address = vault_address(ctx.settings, ctx.kube)
        if deploys_vault(ctx.settings):
            self._deploy(ctx)
        api = VaultApi(address)
        ctx.progress.step(self.name, f"reading seal status of {address}")
        status = self._status(ctx, api)
        ctx.log.info("Vault at %s: %s", address, status.describe())
        done: list[str] = []
        keys: InitKeys | None
        if not status.initialized:
            shares, threshold = ctx.settings.vault.key_shares, ctx.settings.vault.key_threshold
            ctx.progress.step(
                self.name, f"initialising ({shares} key shares, threshold {threshold})"
            )
            keys = self._initialise_detached(ctx, address, shares, threshold)
            path = ctx.state.secrets_dir / FILE_NAME
            ctx.progress.note(self.name, f"unseal keys and root token stored in {path} (0600)")
            done.append("initialised")
            source = "state"
            status = api.status()
        else:
            keys, source = stored_keys(ctx)
        if keys is not None:
            self._store(ctx, keys, source)
        if status.sealed:
            if keys is None:
                raise PermanentError(
                    f"Vault at {address} is initialised and sealed, and no unseal keys are "
                    f"stored for it (not in {ctx.state.secrets_dir / FILE_NAME}, not in "
                    f"vault.unseal_keys_file, not in Secret '{NAMESPACE}/{SECRET_NAME}')",
                    hint="unseal it yourself (`bao operator unseal`), or put the JSON from "
                    "`bao operator init -format=json` in a file and set vault.unseal_keys_file "
                    "to it, then run `platform up` again",
                )
            ctx.progress.step(self.name, "unsealing")
            status = api.unseal(keys.keys)
            done.append("unsealed")
        self._wait_active(ctx, api)
        ctx.state.set_output("vault_address", people_vault_address(ctx.settings, address))
        token_note = self._verify_token(ctx, address)
        summary = ", ".join(done) if done else "already initialised and unsealed"
        return f"Vault {status.version} at {address}: {summary}{token_note}"

    # ---- steps --------------------------------------------------------------------------

    def _initialise_detached(
        self, ctx: StageContext, address: str, shares: int, threshold: int
    ) -> InitKeys:
        """Run `sys/init` in its own session (bootstrap/vault_init.py) and wait for the
        keys file: a kill of this process can then never lose the keys."""
        ctx.state.ensure()
        out = ctx.state.secrets_dir / FILE_NAME
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bootstrap.vault_init",
                "--address",
                address,
                "--shares",
                str(shares),
                "--threshold",
                str(threshold),
                "--out",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        while child.poll() is None:
            ctx.wait(0.2)
        stderr = child.stderr.read().decode(errors="replace").strip() if child.stderr else ""
        if child.returncode != 0 or not out.exists():
            raise PermanentError(
                f"failed to initialise Vault at {address}: {stderr or f'exit code {child.returncode}'}",
                hint="check Vault's log, then run `platform up` again",
            )
        keys = InitKeys.from_json(out.read_text(), str(out))
        redact.register(*keys.keys, keys.root_token)
        return keys

    def _initialising_elsewhere(self, ctx: StageContext) -> bool:
        """True while an earlier run's initialisation (a detached process) is at work."""
        pending = ctx.state.secrets_dir / (FILE_NAME + PENDING_SUFFIX)
        try:
            pid = int(pending.read_text().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pending.unlink(missing_ok=True)  # it died without finishing: stale
            return False
        return True

    def _status(self, ctx: StageContext, api: VaultApi) -> SealStatus:
        if self._initialising_elsewhere(ctx):
            raise WaitingError(
                "Vault is being initialised by an earlier run's helper; waiting for its keys",
                retry_after=1.0,
            )
        try:
            return api.status()
        except TransientError as error:
            if deploys_vault(ctx.settings):
                # Just deployed: the Ingress or the pod may need a moment.
                raise WaitingError(
                    f"waiting for Vault to answer: {error}{access_problem(ctx.settings)}",
                    retry_after=3.0,
                ) from None
            raise PermanentError(
                f"Vault at {api.address} does not answer ({error})",
                hint="start it, or fix vault.address (PLATFORM_VAULT_ADDRESS), then run "
                "`platform up` again",
            ) from None

    def _wait_active(self, ctx: StageContext, api: VaultApi) -> None:
        for _ in range(60):
            ctx.checkpoint()
            if api.active():
                return
            ctx.progress.step(self.name, "waiting for Vault to become active")
            ctx.wait(0.5)
        raise WaitingError("Vault is unsealed but not active yet", retry_after=3.0)

    def _verify_token(self, ctx: StageContext, address: str) -> str:
        try:
            token = vault_token(ctx)
        except PermanentError as error:
            ctx.progress.warn(self.name, f"{error} ({error.hint})")
            return "; no token stored"
        if not VaultApi(address, token).token_valid():
            ctx.progress.warn(
                self.name,
                "the stored Vault token is not valid (revoked?); the terraform "
                "stage needs one: set vault.token_file",
            )
            return "; stored token invalid"
        return ""

    def _store(self, ctx: StageContext, keys: InitKeys, source: str) -> None:
        """Keep the keys in both places: the 0600 file and the cluster Secret."""
        if source != "state" and ctx.state.read_secret(FILE_NAME) is None:
            ctx.state.write_secret(FILE_NAME, keys.to_json())
        try:
            client = ctx.kube()
            live = client.get("v1", "Secret", SECRET_NAME, NAMESPACE)
            wanted = keys.to_secret_data()
            if live is not None and live.get("data") == wanted:
                return
            client.apply(_namespace(), FIELD_MANAGER)
            client.apply(_secret(wanted), FIELD_MANAGER)
            ctx.progress.note(
                self.name, f"unseal keys stored in Secret '{NAMESPACE}/{SECRET_NAME}'"
            )
        except PlatformError as error:
            if deploys_vault(ctx.settings):
                raise  # the in-cluster unsealer needs the Secret
            ctx.progress.warn(
                self.name,
                f"could not store the unseal keys in the cluster ({error}); "
                "they are in the state directory only",
            )

    def _deploy(self, ctx: StageContext) -> None:
        client = ctx.kube()
        objects = render_manifests(ctx.settings.domain)
        ctx.progress.step(self.name, f"applying {len(objects)} OpenBao objects to {NAMESPACE}")
        for obj in objects:
            ctx.checkpoint()
            client.apply(obj, FIELD_MANAGER)
        sts = client.get("apps/v1", "StatefulSet", "openbao", NAMESPACE) or {}
        ready = int((sts.get("status") or {}).get("readyReplicas") or 0)
        if ready < 1:
            raise WaitingError(
                with_cause(
                    f"waiting for StatefulSet '{NAMESPACE}/openbao': 0/1 ready", client, sts
                ),
                retry_after=3.0,
            )


def render_manifests(
    domain: str, vault_image: str = OPENBAO_IMAGE, component_image: str = COMPONENT_IMAGE
) -> list[dict[str, Any]]:
    """stacks/vault/manifests/*.yaml with ${DOMAIN}, ${VAULT_IMAGE}, ${COMPONENT_IMAGE}."""
    values = {"DOMAIN": domain, "VAULT_IMAGE": vault_image, "COMPONENT_IMAGE": component_image}
    return component_manifests("vault", values)


def _namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "platform"}},
    }


def _secret(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "platform"},
        },
        "type": "Opaque",
        "data": data,
    }
