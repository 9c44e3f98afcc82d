"""Stage 7, `terraform`: configure Vault from terraform/vault with OpenTofu or Terraform.

The module is copied into the state dir (`<state>/terraform/vault/`), where its
`.terraform/`, lock file and local state live, so the repository stays clean and each
platform has its own state. Then `init` (skipped when the module and the binary are
unchanged since the last init), `plan -detailed-exitcode` and, only when the plan has
changes, `apply` of that plan: a re-run with no change says "no changes" in a few
seconds.

Inputs reach tofu through the environment only: VAULT_TOKEN and `TF_VAR_*` (generated
demo secret values and the people's password, kept in secrets/terraform-vars.json 0600
so later runs see no change; the Kubernetes host, CA and reviewer JWT). TF_CLI_CONFIG_FILE
from the caller's environment is honoured (offline provider mirrors); a plugin cache in
~/.platform/cache/ is used unless TF_PLUGIN_CACHE_DIR is set. Full tofu output goes to
the log; the plan's one-line summary to the progress line.

A killed run is recovered before anything else (bootstrap.stages.tfstate: a stale lock,
an empty state, a leftover plan file), and the mounts a killed apply created but never
recorded in the state are imported, so the next `up` converges instead of failing on
"path is already in use". The working directory is 0700 and its files 0600: the state and
the plan hold the secret variables; the plan file is removed after every run.

Called by the stage runner.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from bootstrap.assets import asset_dir
from bootstrap.stages import tfstate
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.stages.tofu import Tofu, find_or_install
from bootstrap.stages.vault import FIELD_MANAGER, vault_token
from bootstrap.state import write_atomic
from bootstrap.vault_access import deploys_vault, vault_address
from stacks import redact
from stacks.errors import PlatformError, WaitingError
from stacks.vault.api import VaultApi
from stacks.vault.keys import NAMESPACE

VARS_FILE = "terraform-vars.json"
PLAN_FILE = "platform.tfplan"
REVIEWER = "vault-token-reviewer"
# Seeded demo secrets: KV path -> keys, each value generated once per platform.
DEMO_SECRETS: dict[str, tuple[str, ...]] = {
    "demo/app": ("username", "password", "api-key"),
    "demo/database": ("username", "password"),
}
DEMO_USERNAMES = {"demo/app": "demo", "demo/database": "app"}
# Objects whose creation fails when they already exist ("path is already in use"): the
# ones to import when a killed apply made them without recording them. Every other
# resource in terraform/vault/ is a plain write, which an apply simply repeats.
ADOPTABLE: tuple[tuple[str, str, str], ...] = (
    ("vault_mount.kv", "secret", "mounts"),
    ("vault_auth_backend.kubernetes", "kubernetes", "auth"),
    ("vault_auth_backend.userpass", "userpass", "auth"),
)


def module_source() -> Path:
    """terraform/vault, from the installed package or the source checkout."""
    return asset_dir("terraform", "vault")


def generated_vars(ctx: StageContext) -> dict[str, Any]:
    """Sensitive variables generated once and kept 0600, so re-runs plan no change."""
    text = ctx.state.read_secret(VARS_FILE)
    data: dict[str, Any] = json.loads(text) if text else {}
    changed = False
    if not data.get("userpass_password"):
        data["userpass_password"] = secrets.token_urlsafe(18)
        changed = True
    demo: dict[str, dict[str, str]] = data.setdefault("demo_secrets", {})
    for path, keys in DEMO_SECRETS.items():
        entry = demo.setdefault(path, {})
        for key in keys:
            if key not in entry:
                entry[key] = (
                    DEMO_USERNAMES[path] if key == "username" else secrets.token_urlsafe(24)
                )
                changed = True
    if changed:
        ctx.state.write_secret(VARS_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")
    redact.register(data["userpass_password"])
    for entry in demo.values():
        redact.register(*(v for k, v in entry.items() if k != "username"))
    return data


def kubernetes_inputs(ctx: StageContext) -> dict[str, str]:
    """How Vault reaches and trusts the cluster's API for Kubernetes auth."""
    if deploys_vault(ctx.settings):
        # In the cluster: Vault uses its pod's CA and ServiceAccount token (auth-delegator).
        return {"kubernetes_host": "https://kubernetes.default.svc"}
    client = ctx.kube()
    ca_file = client.server_ca_file()
    inputs = {
        "kubernetes_host": client.host,
        "kubernetes_ca_cert": Path(ca_file).read_text() if ca_file else "",
        "token_reviewer_jwt": reviewer_jwt(ctx),
    }
    return inputs


def reviewer_jwt(ctx: StageContext) -> str:
    """A long-lived token of a ServiceAccount bound to system:auth-delegator, for a Vault
    outside the cluster to review logins with (TokenReview)."""
    client = ctx.kube()
    labels = {"app.kubernetes.io/part-of": "platform"}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": labels},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": REVIEWER, "namespace": NAMESPACE, "labels": labels},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"platform-{REVIEWER}", "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:auth-delegator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": REVIEWER, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": REVIEWER,
                "namespace": NAMESPACE,
                "labels": labels,
                "annotations": {"kubernetes.io/service-account.name": REVIEWER},
            },
        },
    ]
    for obj in objects:
        client.apply(obj, FIELD_MANAGER)
    for _ in range(120):  # the token controller fills it, usually at once
        secret = client.get("v1", "Secret", REVIEWER, NAMESPACE) or {}
        encoded = (secret.get("data") or {}).get("token")
        if encoded:
            token = base64.b64decode(encoded).decode()
            redact.register(token)
            return token
        ctx.wait(0.25)
    raise WaitingError(
        f"waiting for the token controller to fill Secret '{NAMESPACE}/{REVIEWER}'",
        retry_after=3.0,
    )


def _sync_module(source: Path, target: Path) -> str:
    """Copy the *.tf files; returns a digest of the module for the init stamp."""
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    wanted = sorted(p for p in source.iterdir() if p.suffix == ".tf")
    for path in wanted:
        content = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + content)
        destination = target / path.name
        if not destination.exists() or destination.read_bytes() != content:
            destination.write_bytes(content)
    for stale in target.glob("*.tf"):
        if stale.name not in {p.name for p in wanted}:
            stale.unlink()
    return digest.hexdigest()


class TerraformStage:
    name = "terraform"
    description = "configure Vault with OpenTofu/Terraform (terraform/vault)"
    requires: tuple[str, ...] = ("cluster",)

    def timeout(self, ctx: StageContext) -> float:
        return max(ctx.settings.stage_timeout, 300.0)

    def workdir(self, ctx: StageContext) -> Path:
        return ctx.state.root / "terraform" / "vault"

    def check(self, ctx: StageContext) -> CheckResult:
        try:
            api = VaultApi(vault_address(ctx.settings, ctx.kube), vault_token(ctx))
            mounts, auth = api.list_mounts(), api.list_auth()
        except PlatformError as error:
            return CheckResult(False, str(error))
        missing = [
            m
            for m, have in (("secret/", mounts), ("kubernetes/", auth), ("userpass/", auth))
            if m not in have
        ]
        if missing:
            return CheckResult(False, f"Vault lacks {', '.join(missing)}")
        return CheckResult(True, "KV v2 at secret/, Kubernetes and userpass auth configured")

    def plan(self, ctx: StageContext) -> list[str]:
        return [
            f"apply terraform/vault to Vault at {vault_address(ctx.settings, ctx.kube)} "
            f"(state in {self.workdir(ctx)})"
        ]

    def remove(self, ctx: StageContext) -> str:
        """`platform down` (engine existing): the cluster-scoped binding this stage made
        for Vault's token reviewer (its namespace goes with the vault stage's)."""
        name = f"platform-{REVIEWER}"
        if ctx.kube().delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", name):
            return f"deleted ClusterRoleBinding {name}"
        return ""

    def run(self, ctx: StageContext) -> str:
        binary = find_or_install(ctx.settings.terraform.binary, os.environ)
        address = vault_address(ctx.settings, ctx.kube)
        token = vault_token(ctx)
        workdir = self.workdir(ctx)
        digest = _sync_module(module_source(), workdir)
        tfstate.secure(workdir.parent)  # terraform/ and everything in it
        for note in tfstate.recover(workdir, (PLAN_FILE,)):
            ctx.log.warning("%s", note)
            ctx.progress.note(self.name, note)
        env = self._environment(ctx, address, token)
        tofu = Tofu(binary, workdir, env, timeout=self.timeout(ctx))
        try:
            return self._converge(ctx, tofu, workdir, digest, VaultApi(address, token))
        finally:
            (workdir / PLAN_FILE).unlink(missing_ok=True)  # it holds the secret variables
            tfstate.secure(workdir.parent)  # tofu makes a few files 0644 whatever the umask
            for chunk in tofu.output:
                ctx.log.debug("%s", chunk)

    def _converge(
        self, ctx: StageContext, tofu: Tofu, workdir: Path, digest: str, api: VaultApi
    ) -> str:
        stamp = workdir / ".platform-init"
        fingerprint = f"{digest} {tofu.binary}"
        if not (
            stamp.exists()
            and stamp.read_text() == fingerprint
            and (workdir / ".terraform").is_dir()
        ):
            ctx.progress.step(self.name, f"{tofu.tool} init")
            tofu.init()
            write_atomic(stamp, fingerprint.encode(), mode=0o600)
        ctx.checkpoint()
        self._adopt(ctx, tofu, workdir, api)
        tfstate.keep(workdir)
        ctx.progress.step(self.name, f"{tofu.tool} plan")
        plan = tofu.plan(PLAN_FILE)
        ctx.progress.step(self.name, f"plan: {plan.summary()}")
        ctx.log.info("terraform plan for Vault: %s", plan.summary())
        if not plan.changes:
            return "Vault configuration: no changes"
        ctx.checkpoint()
        ctx.progress.step(self.name, f"{tofu.tool} apply ({plan.summary()})")
        tofu.apply(PLAN_FILE)
        ctx.state.set_output("vault_userpass_user", "platform")
        return f"Vault configured: {plan.summary()}"

    def _adopt(self, ctx: StageContext, tofu: Tofu, workdir: Path, api: VaultApi) -> None:
        """Import the mounts that exist in Vault but not in the state (a killed apply)."""
        recorded = tfstate.managed(workdir)
        missing = [entry for entry in ADOPTABLE if entry[0] not in recorded]
        if not missing:
            return
        present = {"mounts": api.list_mounts(), "auth": api.list_auth()}
        for address, path, kind in missing:
            if f"{path}/" in present[kind]:
                ctx.progress.step(self.name, f"{tofu.tool} import {address} (not in the state)")
                ctx.log.warning(
                    "%s exists in Vault but not in the Terraform state; importing it", address
                )
                tofu.import_resource(address, path)

    def _environment(self, ctx: StageContext, address: str, token: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_VAR_", "VAULT_"))}
        env.update(
            {
                "VAULT_TOKEN": token,
                "CHECKPOINT_DISABLE": "1",
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
            }
        )
        if "TF_PLUGIN_CACHE_DIR" not in env:
            cache = ctx.settings.home / "cache" / "terraform-plugins"
            cache.mkdir(parents=True, exist_ok=True)
            env["TF_PLUGIN_CACHE_DIR"] = str(cache)
        generated = generated_vars(ctx)
        variables: dict[str, str] = {
            "vault_address": address,
            "userpass_password": generated["userpass_password"],
            "demo_secrets": json.dumps(generated["demo_secrets"], sort_keys=True),
            **kubernetes_inputs(ctx),
        }
        env.update({f"TF_VAR_{k}": v for k, v in variables.items()})
        return env
