"""Unit tests for the hosts file and server block (stacks.dns.hosts)."""

from __future__ import annotations

from stacks.dns import hosts as h
from stacks.dns.sources import Endpoint


def test_server_block_matches_the_k3s_custom_layout() -> None:
    assert h.render_server_block("localdev.me") == (
        "localdev.me:53 {\n"
        "    errors\n"
        "    hosts /etc/coredns/custom/platform.hosts {\n"
        "        ttl 30\n"
        "        fallthrough\n"
        "    }\n"
        "    forward . /etc/resolv.conf\n"
        "}\n"
    )


def test_desired_entries_filter_domain_and_non_ip_targets() -> None:
    entries, skipped = h.desired_entries(
        [
            Endpoint("a.localdev.me", ("10.0.0.1", "lb.example.com"), "ingress/n/a"),
            Endpoint("b.example.org", ("10.0.0.2",), "ingress/n/b"),
        ],
        "me1",
        "localdev.me",
    )
    assert entries == [h.HostEntry("a.localdev.me", "10.0.0.1", "me1", "ingress/n/a")]
    assert len(skipped) == 2


def test_merge_keeps_foreign_lines_and_replaces_only_owned() -> None:
    existing = "\n".join(
        [
            "# my notes",
            "192.0.2.1 hand.test",
            "10.0.0.9 old.localdev.me # owner=me1 resource=ingress/n/old",
            "10.0.0.8 theirs.localdev.me # owner=someone-else resource=ingress/n/x",
        ]
    )
    new = [h.HostEntry("a.localdev.me", "10.0.0.1", "me1", "ingress/n/a")]
    merged = h.merge(existing, new, "me1")
    lines = merged.splitlines()
    assert "# my notes" in lines and "192.0.2.1 hand.test" in lines
    assert "10.0.0.8 theirs.localdev.me # owner=someone-else resource=ingress/n/x" in lines
    assert not any("old.localdev.me" in line for line in lines)
    assert "10.0.0.1 a.localdev.me # owner=me1 resource=ingress/n/a" in lines
    # idempotent: merging again changes nothing
    assert h.merge(merged, new, "me1") == merged
    # no owned entries left: foreign lines still all there
    emptied = h.merge(merged, [], "me1")
    assert h.owned_lines(emptied, "me1") == []
    assert "192.0.2.1 hand.test" in emptied.splitlines()


def test_owner_of() -> None:
    assert h.owner_of("1.2.3.4 a # owner=x resource=y") == "x"
    assert h.owner_of("1.2.3.4 a # a comment") is None
    assert h.owner_of("1.2.3.4 a") is None


def test_released_takes_out_only_the_owners_lines_and_keys() -> None:
    ours = "10.0.0.5 a.x.test # owner=me resource=ingress/n/a"
    theirs = "10.0.0.9 printer.lan"
    server = h.render_server_block("x.test")
    only_ours = {h.SERVER_KEY: server, h.HOSTS_KEY: f"{h.HEADER}\n{ours}\n", "k.override": "x"}
    assert h.released(only_ours, "me") == {h.SERVER_KEY: None, h.HOSTS_KEY: None}
    mixed = {h.SERVER_KEY: server, h.HOSTS_KEY: f"{h.HEADER}\n{theirs}\n{ours}\n"}
    assert h.released(mixed, "me") == {h.HOSTS_KEY: f"{h.HEADER}\n{theirs}\n"}
    assert h.released({"k.override": "x"}, "me") == {}
