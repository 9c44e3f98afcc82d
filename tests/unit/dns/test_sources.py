"""Unit tests for the DNS stub's sources (stacks.dns.sources): external-dns rules."""

from __future__ import annotations

from stacks.dns import sources as s


def test_ingress_names_from_rules_tls_and_annotation_with_lb_target() -> None:
    obj = {
        "metadata": {"name": "web", "namespace": "ns", "annotations": {s.HOSTNAME: "extra.test"}},
        "spec": {
            "rules": [{"host": "A.test."}, {"http": {}}],
            "tls": [{"hosts": ["a.test", "b.test"]}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.2"}]}},
    }
    endpoints = s.ingress_endpoints(obj, "10.0.0.1")
    assert [e.name for e in endpoints] == ["a.test", "b.test", "extra.test"]
    assert {e.targets for e in endpoints} == {("172.18.0.2",)}
    assert endpoints[0].resource == "ingress/ns/web"


def test_target_annotation_wins_then_default() -> None:
    obj = {
        "metadata": {"name": "w", "namespace": "n", "annotations": {s.TARGET: "1.1.1.1, 2.2.2.2"}},
        "spec": {"rules": [{"host": "x.test"}]},
    }
    assert s.ingress_endpoints(obj)[0].targets == ("1.1.1.1", "2.2.2.2")
    plain = {"metadata": {"name": "w", "namespace": "n"}, "spec": {"rules": [{"host": "x.test"}]}}
    assert s.ingress_endpoints(plain, "10.0.0.1")[0].targets == ("10.0.0.1",)
    assert s.ingress_endpoints(plain) == []  # no target at all: nothing to publish


def test_service_only_with_hostname_annotation() -> None:
    assert (
        s.service_endpoints({"metadata": {"name": "a", "namespace": "n"}, "spec": {}}, "10.0.0.1")
        == []
    )
    obj = {
        "metadata": {
            "name": "db",
            "namespace": "n",
            "annotations": {s.HOSTNAME: "db.test,pg.test"},
        },
        "spec": {"externalIPs": ["10.1.1.1"]},
    }
    assert [(e.name, e.targets) for e in s.service_endpoints(obj)] == [
        ("db.test", ("10.1.1.1",)),
        ("pg.test", ("10.1.1.1",)),
    ]


def test_dnsrecord() -> None:
    obj = {
        "metadata": {"name": "api", "namespace": "n"},
        "spec": {"dnsName": "api.test", "targets": ["10.2.2.2"], "ttl": 60},
    }
    assert s.record_endpoints(obj) == [s.Endpoint("api.test", ("10.2.2.2",), "dnsrecord/n/api", 60)]


def test_in_domain() -> None:
    assert s.in_domain("a.localdev.me", "localdev.me.")
    assert s.in_domain("localdev.me", "localdev.me")
    assert not s.in_domain("evil-localdev.me", "localdev.me")
