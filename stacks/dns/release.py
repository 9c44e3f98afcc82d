"""Take the DNS stub's entries out of `kube-system/coredns-custom` when the platform goes.

The stub writes two keys into k3s's `coredns-custom` ConfigMap (stacks/dns/hosts.py) and
creates the ConfigMap when the cluster has none, marking it with CREATED_BY. `release`
removes exactly what the stub owns: its host lines, and its keys when nothing of anyone
else's is left in them; it deletes the ConfigMap only when the stub created it and no
other key remains, so a cluster's own CoreDNS customisations are never touched.

Called by `platform down` (bootstrap's dns stage) once the stub itself has stopped, so it
cannot write its entries back; the stub's controller marks the ConfigMap it creates.
"""

from __future__ import annotations

from stacks.dns import hosts
from stacks.kube.client import KubeClient

# Set on a coredns-custom that the stub created (the value is its owner id).
CREATED_BY = "dns.platform.local/created-by"


def release(client: KubeClient, namespace: str, name: str, owner: str) -> str:
    """Remove `owner`'s entries from the ConfigMap; what was done, for the user ('' if nothing)."""
    live = client.get("v1", "ConfigMap", name, namespace)
    if live is None:
        return ""
    data: dict[str, str] = live.get("data") or {}
    patch = hosts.released(data, owner)
    left = {k: v for k, v in data.items() if k not in patch or patch[k] is not None}
    created_by = (live["metadata"].get("annotations") or {}).get(CREATED_BY)
    where = f"ConfigMap {namespace}/{name}"
    if created_by == owner and not left:
        client.delete("v1", "ConfigMap", name, namespace)
        return f"deleted {where} (the DNS stub had created it)"
    if not patch:
        return ""
    client.merge_patch(
        "v1",
        "ConfigMap",
        name,
        {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "data": patch},
        namespace,
    )
    return f"removed the DNS stub's entries from {where}"
