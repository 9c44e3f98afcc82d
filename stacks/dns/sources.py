"""Where DNS names come from: Ingresses, annotated Services and DNSRecord objects (pure).

Follows external-dns's source rules (`docs/sources/{ingress,service}.md`) with the
v0.22+ annotation prefix `external-dns.kubernetes.io/`:
    Ingress   names = spec.rules[].host + spec.tls[].hosts + the hostname annotation
    Service   names only from the hostname annotation (comma list)
    DNSRecord (dns.platform.local/v1alpha1) spec{dnsName, targets[], ttl}
Targets: the target annotation, else status.loadBalancer.ingress[].ip (and a Service's
externalIPs), else the configured default target.

No I/O. Called by `stacks.dns.controller` with objects it listed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ANNOTATION_PREFIX = "external-dns.kubernetes.io/"
HOSTNAME = ANNOTATION_PREFIX + "hostname"
TARGET = ANNOTATION_PREFIX + "target"
TTL = ANNOTATION_PREFIX + "ttl"
DNS_GROUP = "dns.platform.local"
DNS_API_VERSION = f"{DNS_GROUP}/v1alpha1"


@dataclass(frozen=True, order=True)
class Endpoint:
    """One name with its targets, and the resource it came from ("ingress/ns/name")."""

    name: str
    targets: tuple[str, ...]
    resource: str
    ttl: int = 0


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def in_domain(name: str, domain: str) -> bool:
    domain = normalise_name(domain)
    return name == domain or name.endswith("." + domain)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _lb_targets(obj: dict[str, Any]) -> list[str]:
    found = []
    for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip"):
            found.append(str(entry["ip"]))
        elif entry.get("hostname"):
            found.append(str(entry["hostname"]))
    return found


def _targets(obj: dict[str, Any], fallback: Iterable[str], default: str) -> tuple[str, ...]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(TARGET):
        return tuple(_split(str(annotations[TARGET])))
    found = list(fallback)
    if found:
        return tuple(found)
    return (default,) if default else ()


def _ttl(obj: dict[str, Any]) -> int:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(TTL) or 0)
    except ValueError:
        return 0


def _resource(kind: str, obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{kind}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def ingress_endpoints(obj: dict[str, Any], default_target: str = "") -> list[Endpoint]:
    spec = obj.get("spec") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    names: list[str] = [str(r["host"]) for r in spec.get("rules") or [] if r.get("host")]
    for tls in spec.get("tls") or []:
        names.extend(str(h) for h in tls.get("hosts") or [])
    names.extend(_split(str(annotations.get(HOSTNAME) or "")))
    targets = _targets(obj, _lb_targets(obj), default_target)
    return _endpoints(names, targets, _resource("ingress", obj), _ttl(obj))


def service_endpoints(obj: dict[str, Any], default_target: str = "") -> list[Endpoint]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    names = _split(str(annotations.get(HOSTNAME) or ""))
    if not names:
        return []
    spec = obj.get("spec") or {}
    fallback = [str(ip) for ip in spec.get("externalIPs") or []] or _lb_targets(obj)
    targets = _targets(obj, fallback, default_target)
    return _endpoints(names, targets, _resource("service", obj), _ttl(obj))


def record_endpoints(obj: dict[str, Any]) -> list[Endpoint]:
    spec = obj.get("spec") or {}
    name = str(spec.get("dnsName") or "")
    targets = tuple(str(t) for t in spec.get("targets") or [])
    return _endpoints(
        [name] if name else [], targets, _resource("dnsrecord", obj), int(spec.get("ttl") or 0)
    )


def _endpoints(
    names: Iterable[str], targets: tuple[str, ...], resource: str, ttl: int
) -> list[Endpoint]:
    if not targets:
        return []
    seen: dict[str, Endpoint] = {}
    for raw in names:
        name = normalise_name(raw)
        if name and not name.startswith("*") and name not in seen:
            seen[name] = Endpoint(name, targets, resource, ttl)
    return list(seen.values())
