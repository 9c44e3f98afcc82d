"""The `terraform` stage: a real `tofu` apply of terraform/vault/ with the real Vault
provider (3.3.1, offline mirror) against a real OpenBao, Kubernetes auth reviewed by the
real kube-apiserver, and no secret in any output, log, state record or argv."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bootstrap.stages.base import StageContext
from bootstrap.stages.terraform import VARS_FILE, TerraformStage
from bootstrap.stages.vault import VaultStage
from stacks.errors import PermanentError
from stacks.kube.client import KubeClient
from stacks.vault.api import VaultApi
from stacks.vault.keys import FILE_NAME
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer
from tests.support.stages import MakeContext, progress_lines, watching_argv

pytestmark = pytest.mark.integration


def _secrets_of(ctx: StageContext) -> list[str]:
    init = json.loads((ctx.state.secrets_dir / FILE_NAME).read_text())
    generated = json.loads((ctx.state.secrets_dir / VARS_FILE).read_text())
    values = [init["root_token"], *init["unseal_keys_hex"], generated["userpass_password"]]
    for entry in generated["demo_secrets"].values():
        values += [v for k, v in entry.items() if k != "username"]
    return values


def _run_both(ctx: StageContext) -> tuple[str, str, float, float]:
    started = time.monotonic()
    vault_summary = VaultStage().run(ctx)
    vault_seconds = time.monotonic() - started
    started = time.monotonic()
    tf_summary = TerraformStage().run(ctx)
    return vault_summary, tf_summary, vault_seconds, time.monotonic() - started


def test_apply_configures_vault_and_second_apply_changes_nothing(
    vault: OpenBaoServer, cluster: KwokCluster, make_context: MakeContext, tofu_env: Path
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-apply")
    _, summary, vault_cold, tf_cold = _run_both(ctx)
    assert summary.startswith("Vault configured:") and "to add" in summary

    root = json.loads((ctx.state.secrets_dir / FILE_NAME).read_text())["root_token"]
    api = VaultApi(vault.address, root)
    assert api.list_mounts()["secret/"] == "kv"
    assert (api.read("sys/mounts/secret") or {}).get("data", {}).get("options", {}).get(
        "version"
    ) == "2"
    auth = api.list_auth()
    assert auth["kubernetes/"] == "kubernetes" and auth["userpass/"] == "userpass"
    policy = (api.read("sys/policy/secrets-controller") or {})["data"]["rules"]
    assert 'path "secret/data/demo/*"' in policy and '"read"' in policy and "update" not in policy
    assert api.read("sys/policy/platform-people") is not None
    role = (api.read("auth/kubernetes/role/secrets-controller") or {})["data"]
    assert role["bound_service_account_names"] == ["secrets-controller"]
    assert role["bound_service_account_namespaces"] == ["platform-secrets"]
    demo = (api.read("secret/data/demo/app") or {})["data"]["data"]
    generated = json.loads((ctx.state.secrets_dir / VARS_FILE).read_text())
    assert demo == generated["demo_secrets"]["demo/app"]
    assert TerraformStage().check(ctx).done

    _, again, vault_warm, tf_warm = _run_both(ctx)
    assert again == "Vault configuration: no changes"
    assert tf_warm < tf_cold
    print(
        f"\nFIGURES vault cold {vault_cold:.2f}s warm {vault_warm:.2f}s; "
        f"terraform cold {tf_cold:.2f}s warm {tf_warm:.2f}s"
    )


def test_kubernetes_auth_end_to_end(
    vault: OpenBaoServer, cluster: KwokCluster, make_context: MakeContext, tofu_env: Path
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-k8s")
    _run_both(ctx)
    cluster.kubectl("create", "namespace", "platform-secrets", check=False)
    cluster.kubectl(
        "create", "serviceaccount", "-n", "platform-secrets", "secrets-controller", check=False
    )
    cluster.kubectl("create", "serviceaccount", "-n", "platform-secrets", "intruder", check=False)
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    jwt = client.token_request("platform-secrets", "secrets-controller", expiration_seconds=600)

    token = VaultApi(vault.address).kubernetes_login("secrets-controller", jwt)
    as_controller = VaultApi(vault.address, token)

    secret = as_controller.read("secret/data/demo/database")
    assert secret is not None and secret["data"]["data"]["username"] == "app"
    with pytest.raises(PermanentError, match="permission denied"):
        as_controller.read("secret/data/platform/other")
    with pytest.raises(PermanentError, match="permission denied"):
        as_controller.write("secret/data/demo/database", {"data": {"password": "x"}})
    with pytest.raises(PermanentError, match="permission denied"):
        as_controller.read("sys/policy/secrets-controller")

    # Another ServiceAccount's real token is refused by the role.
    other = client.token_request("platform-secrets", "intruder", expiration_seconds=600)
    with pytest.raises(PermanentError):
        VaultApi(vault.address).kubernetes_login("secrets-controller", other)
    # A token the API server did not issue is refused by the TokenReview.
    with pytest.raises(PermanentError):
        VaultApi(vault.address).kubernetes_login("secrets-controller", jwt[:-8] + "AAAAAAAA")
    client.close()


def test_no_secret_leaks_into_output_logs_state_or_argv(
    vault: OpenBaoServer,
    cluster: KwokCluster,
    make_context: MakeContext,
    tofu_env: Path,
    debug_log: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ctx = make_context(vault.address, kubeconfig=cluster.kubeconfig, name="tf-leak")
    with watching_argv() as argv:
        _run_both(ctx)
        vault.restart()  # sealed: the re-run unseals with the stored keys
        _run_both(ctx)
    captured = capfd.readouterr()
    lines = progress_lines(ctx)
    assert lines  # the stages did report
    secrets = _secrets_of(ctx)
    log_text = debug_log.read_text()
    assert "tofu plan" in log_text or "terraform plan" in log_text  # the debug log is real
    assert any("tofu" in line and " plan " in line for line in argv)  # and so is the scan
    haystacks = {
        "stdout": captured.out,
        "stderr": captured.err,
        "debug log": log_text,
        "progress": "\n".join(lines),
        "state.json": ctx.state.state_file.read_text() if ctx.state.state_file.exists() else "",
        "argv": "\n".join(argv),
    }
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret value appeared in {where}"
