"""Pure sync logic: data resolution, templating, hashing, policy validation, parsing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from stacks.secrets.api import (
    CreationPolicy,
    DeletionPolicy,
    KubernetesAuth,
    SpecError,
    TokenAuth,
    check_policies,
    parse_duration,
    parse_external_secret,
    parse_store,
)
from stacks.secrets.controller import owner_conflict, synced_version
from stacks.secrets.resolve import (
    DesiredSecret,
    TemplateError,
    data_hash,
    live_matches,
    render_template,
    resolve,
)


def es(spec: dict[str, Any], name: str = "app") -> dict[str, Any]:
    base: dict[str, Any] = {"secretStoreRef": {"name": "vault"}}
    base.update(spec)
    return {"kind": "ExternalSecret", "metadata": {"name": name, "namespace": "ns"}, "spec": base}


def item(secret_key: str, key: str, prop: str = "") -> dict[str, Any]:
    ref = {"key": key}
    if prop:
        ref["property"] = prop
    return {"secretKey": secret_key, "remoteRef": ref}


# ---- resolution ------------------------------------------------------------------------


def test_every_key_resolved() -> None:
    spec = parse_external_secret(
        es(
            {
                "data": [
                    item("user", "db", "username"),
                    item("port", "db", "conn.port"),
                    item("all", "other"),
                ],
                "dataFrom": [{"extract": {"key": "flat"}}],
            }
        )
    )
    assert spec.remote_keys() == ["db", "other", "flat"]
    result = resolve(
        spec,
        {
            "db": {"username": "u", "conn": {"port": 5432}},
            "other": {"x": "1"},
            "flat": {"k": "v", "n": 3, "user": "overridden-by-data"},
        },
    )
    assert result.complete and result.secret is not None
    assert result.secret.data_dict() == {
        "user": b"u",
        "port": b"5432",
        "all": b'{"x":"1"}',
        "k": b"v",
        "n": b"3",
    }


def test_a_missing_property_or_key_is_not_a_partial_result() -> None:
    spec = parse_external_secret(
        es({"data": [item("a", "k", "a"), item("b", "k", "b"), item("c", "gone")]})
    )
    result = resolve(spec, {"k": {"a": "1"}, "gone": None})
    assert result.secret is None
    assert not result.all_gone
    assert len(result.missing) == 2
    assert "'b'" in result.missing[0] and "'gone'" in result.missing[1]
    # no value in the messages
    assert all("1" not in m for m in result.missing)


def test_all_gone_only_when_every_remote_key_is_absent() -> None:
    spec = parse_external_secret(
        es({"data": [item("a", "k1", "a")], "dataFrom": [{"extract": {"key": "k2"}}]})
    )
    assert resolve(spec, {"k1": None, "k2": None}).all_gone
    assert not resolve(spec, {"k1": None, "k2": {"x": "y"}}).all_gone


def test_exact_key_with_dots_wins_over_a_path() -> None:
    spec = parse_external_secret(es({"data": [item("a", "k", "tls.crt")]}))
    result = resolve(spec, {"k": {"tls.crt": "PEM", "tls": {"crt": "other"}}})
    assert result.secret is not None and result.secret.data_dict() == {"a": b"PEM"}


# ---- templates -------------------------------------------------------------------------


def test_render_template_substitutes_plain_and_index_forms() -> None:
    values = {"host": b"db", "api-key": b"k"}
    assert render_template('{{ .host }}:{{index . "api-key"}}-{{- .host -}}', values) == b"db:k-db"


@pytest.mark.parametrize("text", ["{{ .missing }}", "{{ .host | upper }}", "{{ range . }}"])
def test_render_template_rejects_unknown_keys_and_actions(text: str) -> None:
    with pytest.raises(TemplateError):
        render_template(text, {"host": b"db"})


def test_template_replace_and_merge_policies() -> None:
    raw: dict[str, Any] = {
        "target": {
            "template": {
                "type": "kubernetes.io/basic-auth",
                "data": {"url": "x://{{ .u }}"},
                "metadata": {"labels": {"l": "1"}},
            }
        },
        "data": [item("u", "k", "u")],
    }
    spec = parse_external_secret(es(raw))
    result = resolve(spec, {"k": {"u": "me"}})
    assert result.secret == DesiredSecret(
        data=(("url", b"x://me"),), type="kubernetes.io/basic-auth", labels=(("l", "1"),)
    )
    raw["target"]["template"]["mergePolicy"] = "Merge"
    merged = resolve(parse_external_secret(es(raw)), {"k": {"u": "me"}})
    assert merged.secret is not None and merged.secret.data_dict() == {"u": b"me", "url": b"x://me"}


# ---- hashing ---------------------------------------------------------------------------


def test_hash_is_stable_and_changes_with_any_written_field() -> None:
    base = DesiredSecret(data=(("a", b"1"),))
    assert data_hash(base) == data_hash(DesiredSecret(data=(("a", b"1"),)))
    variants = [
        DesiredSecret(data=(("a", b"2"),)),
        DesiredSecret(data=(("b", b"1"),)),
        DesiredSecret(data=(("a", b"1"),), type="x"),
        DesiredSecret(data=(("a", b"1"),), labels=(("l", "v"),)),
        DesiredSecret(data=(("a", b"1"),), annotations=(("l", "v"),)),
    ]
    assert len({data_hash(v) for v in variants} | {data_hash(base)}) == len(variants) + 1


def test_live_matches_detects_drift() -> None:
    desired = DesiredSecret(data=(("a", b"1"),), type="Opaque")
    wanted = data_hash(desired)
    live: dict[str, Any] = {
        "type": "Opaque",
        "metadata": {"annotations": {"secrets.platform.local/data-hash": wanted}},
        "data": {"a": base64.b64encode(b"1").decode()},
    }
    assert live_matches(live, desired, wanted)
    live["data"]["a"] = base64.b64encode(b"tampered").decode()
    assert not live_matches(live, desired, wanted)
    assert not live_matches(None, desired, wanted)


# ---- policies and parsing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("creation", "deletion", "ok"),
    [
        ("Owner", "Retain", True),
        ("Owner", "Delete", True),
        ("Orphan", "Delete", True),
        ("Merge", "Retain", True),
        ("Merge", "Merge", True),
        ("None", "Retain", True),
        ("Merge", "Delete", False),
        ("None", "Delete", False),
        ("None", "Merge", False),
    ],
)
def test_policy_combinations(creation: str, deletion: str, ok: bool) -> None:
    if ok:
        check_policies(CreationPolicy(creation), DeletionPolicy(deletion))
    else:
        with pytest.raises(SpecError, match="cannot be combined"):
            check_policies(CreationPolicy(creation), DeletionPolicy(deletion))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (None, 3600.0),
        ("1h0m0s", 3600.0),
        ("15m", 900.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("500ms", 0.5),
        (30, 30.0),
    ],
)
def test_parse_duration(text: str | int | None, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1 hour", "h", "10x", "5m garbage"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(SpecError):
        parse_duration(text)


def test_external_secret_defaults() -> None:
    spec = parse_external_secret(es({"data": [item("a", "k")]}))
    assert spec.refresh_seconds == 3600.0
    assert spec.target_name == "app"
    assert spec.creation is CreationPolicy.OWNER and spec.deletion is DeletionPolicy.RETAIN
    assert spec.store_kind == "SecretStore"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "must name something"),
        ({"data": [item("bad key!", "k")]}, "not a valid Secret key"),
        (
            {"secretStoreRef": {"name": "v", "kind": "Other"}, "data": [item("a", "k")]},
            "SecretStore or ClusterSecretStore",
        ),
        ({"target": {"creationPolicy": "Sometimes"}, "data": [item("a", "k")]}, "must be one of"),
        ({"dataFrom": [{"find": {"path": "x"}}]}, "only extract"),
    ],
)
def test_external_secret_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_external_secret(es(spec))


def store(kind: str, vault: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    meta = {"name": "s", "namespace": namespace} if kind == "SecretStore" else {"name": "s"}
    return {"kind": kind, "metadata": meta, "spec": {"provider": {"vault": vault}}}


def test_parse_store_token_and_kubernetes_auth() -> None:
    token = parse_store(
        store(
            "SecretStore",
            {"server": "http://v:8200/", "auth": {"tokenSecretRef": {"name": "t", "key": "k"}}},
        )
    )
    assert token.server == "http://v:8200" and token.path == "secret" and token.version == "v2"
    assert isinstance(token.auth, TokenAuth) and token.auth.secret.namespace == "ns"
    k8s = parse_store(
        store(
            "ClusterSecretStore",
            {
                "server": "https://v",
                "path": "/kv/",
                "version": "v1",
                "caBundle": base64.b64encode(b"PEM").decode(),
                "auth": {
                    "kubernetes": {
                        "role": "r",
                        "serviceAccountRef": {"name": "sa", "namespace": "x"},
                    }
                },
            },
        )
    )
    assert isinstance(k8s.auth, KubernetesAuth)
    assert k8s.auth.mount_path == "kubernetes" and k8s.auth.service_account.namespace == "x"
    assert k8s.path == "kv" and k8s.version == "v1" and k8s.ca_bundle == b"PEM"


@pytest.mark.parametrize(
    ("kind", "vault", "message"),
    [
        ("SecretStore", {"auth": {}}, "server is required"),
        ("SecretStore", {"server": "v:8200", "auth": {}}, "http"),
        ("SecretStore", {"server": "http://v", "auth": {}}, "tokenSecretRef or kubernetes"),
        ("SecretStore", {"server": "http://v", "version": "v3", "auth": {}}, "v1 or v2"),
        (
            "ClusterSecretStore",
            {"server": "http://v", "auth": {"tokenSecretRef": {"name": "t", "key": "k"}}},
            "namespace is required",
        ),
        (
            "SecretStore",
            {
                "server": "http://v",
                "auth": {"tokenSecretRef": {"name": "t", "key": "k", "namespace": "other"}},
            },
            "own namespace",
        ),
        (
            "SecretStore",
            {"server": "http://v", "auth": {"kubernetes": {"role": "r"}}},
            "serviceAccountRef",
        ),
    ],
)
def test_parse_store_errors(kind: str, vault: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_store(store(kind, vault))


# ---- ownership and versions ------------------------------------------------------------


def test_owner_conflict() -> None:
    mine = {"metadata": {"name": "app", "namespace": "ns", "uid": "u1"}}
    assert owner_conflict({"metadata": {}}, mine) == ""
    ours = {
        "metadata": {
            "ownerReferences": [
                {"kind": "ExternalSecret", "name": "app", "uid": "u1", "controller": True}
            ]
        }
    }
    assert owner_conflict(ours, mine) == ""
    theirs = {
        "metadata": {
            "ownerReferences": [
                {"kind": "Deployment", "name": "d", "uid": "u2", "controller": True}
            ]
        }
    }
    assert "Deployment 'd'" in owner_conflict(theirs, mine)
    other_es = {"metadata": {"annotations": {"secrets.platform.local/external-secret": "ns/other"}}}
    assert "ns/other" in owner_conflict(other_es, mine)


def test_synced_version_changes_with_force_sync_annotation() -> None:
    obj: dict[str, Any] = {"metadata": {"generation": 3, "annotations": {}}}
    before = synced_version(obj)
    obj["metadata"]["annotations"]["secrets.platform.local/force-sync"] = "1"
    assert synced_version(obj) != before and synced_version(obj).startswith("3-")


def test_install_manifests_and_platform_store() -> None:
    from stacks.secrets.install import manifests, platform_cluster_store

    objects = manifests("registry.local/platform:1")
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace" and kinds.count("CustomResourceDefinition") == 3
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/platform:1"
    assert container["command"] == ["platform", "run", "secrets"]
    store = platform_cluster_store("http://openbao.vault:8200")
    parsed = parse_store(store)
    assert isinstance(parsed.auth, KubernetesAuth)
    assert parsed.auth.service_account.namespace == "platform-secrets"
