"""Upstream's bugs we must not repeat, against a real API server and a real OpenBao:
missing keys, Vault stopped or sealed, ownership (Owner / Orphan / Merge) and
deletionPolicy."""

from __future__ import annotations

import pytest

from tests.support import processes
from tests.support.components import Component
from tests.support.openbao import unseal
from tests.support.secrets import Bao, Secrets, decode

pytestmark = pytest.mark.integration


def _es(key: str = "app/cfg", refresh: str = "1s", **target: str) -> dict[str, object]:
    return {
        "refreshInterval": refresh,
        "target": dict(target),
        "data": [
            {"secretKey": "a", "remoteRef": {"key": key, "property": "a"}},
            {"secretKey": "b", "remoteRef": {"key": key, "property": "b"}},
        ],
    }


def test_missing_key_is_not_ready_and_changes_nothing(
    controller: Component, secrets: Secrets, bao: Bao
) -> None:
    bao.put("app/cfg", {"a": "1", "b": "2"})
    secrets.token_store()
    secrets.external_secret("cfg", _es())
    secrets.wait_data("cfg", {"a": "1", "b": "2"})
    before = secrets.secret("cfg")
    assert before is not None

    # property b disappears, a changes: partial success is not Ready and writes nothing
    bao.put("app/cfg", {"a": "changed"})
    condition = secrets.wait_ready(
        "cfg", status="False", reason="SecretSyncedError", contains="'b'"
    )
    assert "kept Secret" in condition["message"]
    # The failing sync is retried (1 s refresh caps the backoff): see one more failure
    # happen, then the Secret must still be the one from before.
    errors = controller.metrics()["platform_secrets_sync_errors_total"]
    controller.wait_metric("platform_secrets_sync_errors_total", above=errors, timeout=15)
    after = secrets.secret("cfg")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert any(
        e["reason"] == "UpdateFailed" and e["type"] == "Warning" for e in secrets.events("cfg")
    )

    # an ExternalSecret whose key never existed creates no Secret
    secrets.external_secret("never", _es(key="app/none"))
    secrets.wait_ready("never", status="False", reason="SecretSyncedError", contains="not found")
    assert secrets.secret("never") is None

    bao.put("app/cfg", {"a": "3", "b": "4"})
    secrets.wait_data("cfg", {"a": "3", "b": "4"}, timeout=10)
    secrets.wait_ready("cfg", reason="SecretSynced")


def test_vault_stopped_then_sealed_keeps_secret_and_recovers(
    controller: Component, secrets: Secrets, bao: Bao
) -> None:
    bao.put("app/cfg", {"a": "1", "b": "2"})
    secrets.token_store()
    secrets.external_secret("cfg", _es())
    secrets.wait_data("cfg", {"a": "1", "b": "2"})
    version = secrets.secret("cfg")["metadata"]["resourceVersion"]  # type: ignore[index]

    bao.server.stop()
    secrets.wait_ready("cfg", status="False", reason="SecretSyncedError", contains="unreachable")
    assert secrets.secret("cfg")["metadata"]["resourceVersion"] == version  # type: ignore[index]

    bao.server.start()  # raft storage: a restart comes back sealed
    secrets.wait_ready("cfg", status="False", reason="SecretSyncedError", contains="sealed")
    assert decode(secrets.secret("cfg")) == {"a": "1", "b": "2"}
    assert secrets.secret("cfg")["metadata"]["resourceVersion"] == version  # type: ignore[index]

    unseal(bao.server, bao.init.keys[:2])
    bao.put("app/cfg", {"a": "after", "b": "unseal"})
    took = secrets.wait_data("cfg", {"a": "after", "b": "unseal"}, timeout=15)
    assert took < 5, f"recovery took {took:.1f}s"
    secrets.wait_ready("cfg", reason="SecretSynced")


def test_owner_refuses_a_secret_owned_by_something_else(
    controller: Component, secrets: Secrets, bao: Bao
) -> None:
    bao.put("app/cfg", {"a": "1", "b": "2"})
    secrets.token_store()
    # a Secret controlled by another object (a ConfigMap stands in for any owner)
    cm = secrets.kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": secrets.namespace},
        }
    )
    secrets.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "taken",
                "namespace": secrets.namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": cm["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "stringData": {"mine": "yes"},
        }
    )
    secrets.external_secret("grab", _es(name="taken"))
    condition = secrets.wait_ready(
        "grab", status="False", reason="SecretSyncedError", contains="refusing"
    )
    assert "ConfigMap 'owner'" in condition["message"]
    assert decode(secrets.secret("taken")) == {"mine": "yes"}

    # two ExternalSecrets, one target: the second one does not take it over
    secrets.external_secret("first", _es(name="shared", creationPolicy="Orphan"))
    secrets.wait_data("shared", {"a": "1", "b": "2"})
    secrets.external_secret("second", _es(name="shared", creationPolicy="Orphan"))
    condition = secrets.wait_ready("second", status="False", contains="managed by ExternalSecret")


def test_owner_orphan_merge_and_deletion_policy(
    controller: Component, secrets: Secrets, bao: Bao
) -> None:
    bao.put("app/cfg", {"a": "1", "b": "2"})
    secrets.token_store()

    # Owner: deleting the ExternalSecret deletes the Secret (garbage collection)
    secrets.external_secret("owned", _es(name="owned"))
    secrets.wait_data("owned", {"a": "1", "b": "2"})
    # Orphan: no owner reference; the Secret stays
    secrets.external_secret("orphan", _es(name="orphan", creationPolicy="Orphan"))
    secrets.wait_data("orphan", {"a": "1", "b": "2"})
    assert not secrets.secret("orphan")["metadata"].get("ownerReferences")  # type: ignore[index]
    # Merge: only adds keys to an existing Secret, and waits for it to exist
    secrets.external_secret("merge", _es(name="app-config", creationPolicy="Merge"))
    secrets.wait_ready("merge", status="False", contains="does not exist")
    secrets.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "app-config", "namespace": secrets.namespace},
            "stringData": {"theirs": "kept", "a": "old"},
        }
    )
    secrets.wait_data("app-config", {"theirs": "kept", "a": "1", "b": "2"}, timeout=40)

    secrets.cluster.kubectl(
        "delete", "externalsecret", "owned", "orphan", "merge", "-n", secrets.namespace
    )
    processes.wait_for(
        lambda: secrets.secret("owned") is None, 30, "the owned Secret to be collected"
    )
    assert decode(secrets.secret("orphan")) == {"a": "1", "b": "2"}
    assert decode(secrets.secret("app-config"))["theirs"] == "kept"

    # deletionPolicy Delete: when every remote key is gone, the Secret goes too
    bao.put("app/gone", {"a": "1", "b": "2"})
    secrets.external_secret(
        "deleting", _es(key="app/gone", name="deleting", deletionPolicy="Delete")
    )
    secrets.external_secret("retaining", _es(key="app/gone", name="retaining"))
    secrets.wait_data("deleting", {"a": "1", "b": "2"})
    secrets.wait_data("retaining", {"a": "1", "b": "2"})
    bao.delete("app/gone")
    secrets.wait_ready("deleting", status="False", reason="SecretDeleted")
    processes.wait_for(
        lambda: secrets.secret("deleting") is None, 15, "the Delete-policy Secret to go"
    )
    secrets.wait_ready(
        "retaining", status="False", reason="SecretSyncedError", contains="kept Secret"
    )
    assert decode(secrets.secret("retaining")) == {"a": "1", "b": "2"}

    # a Secret edited by hand is put back; stray keys are removed (Owner)
    secrets.external_secret("drift", _es(name="drift", refresh="1s"))
    secrets.wait_data("drift", {"a": "1", "b": "2"})
    secrets.cluster.kubectl(
        "patch",
        "secret",
        "drift",
        "-n",
        secrets.namespace,
        "--type=merge",
        "-p",
        '{"stringData": {"a": "tampered", "extra": "x"}}',
    )
    secrets.wait_data("drift", {"a": "1", "b": "2"}, timeout=45)
