"""The two keys the DNS stub owns in `kube-system/coredns-custom` (pure rendering/merging).

k3s's CoreDNS mounts `coredns-custom` at /etc/coredns/custom and its Corefile has a
top-level `import /etc/coredns/custom/*.server`, so:

    platform.server   a server block for the platform's domain:
                        <domain>:53 {
                            errors
                            hosts /etc/coredns/custom/platform.hosts {
                                ttl 30
                                fallthrough
                            }
                            forward . /etc/resolv.conf
                        }
    platform.hosts    the hosts file the hosts plugin re-reads (every 5 s): record churn
                      never touches the Corefile.

Each entry the stub writes carries an ownership comment
(`# owner=<id> resource=<kind>/<ns>/<name>`, the hosts plugin ignores comments);
`merge` keeps every line it does not own exactly as it was, and replaces only its own.
No I/O; called by `stacks.dns.controller` and unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stacks.dns.sources import Endpoint, in_domain, is_ip

SERVER_KEY = "platform.server"
HOSTS_KEY = "platform.hosts"
MOUNT_DIR = "/etc/coredns/custom"
HEADER = "# Managed by the platform DNS stub; lines with owner=<id> are rewritten, others kept."


@dataclass(frozen=True, order=True)
class HostEntry:
    """One line `<ip> <name>` owned by `owner`, made from `resource`."""

    name: str
    ip: str
    owner: str
    resource: str

    def line(self) -> str:
        return f"{self.ip} {self.name} # owner={self.owner} resource={self.resource}"


def render_server_block(
    domain: str, hosts_path: str = f"{MOUNT_DIR}/{HOSTS_KEY}", ttl: int = 30, port: int = 53
) -> str:
    return (
        f"{domain.rstrip('.')}:{port} {{\n"
        "    errors\n"
        f"    hosts {hosts_path} {{\n"
        f"        ttl {ttl}\n"
        "        fallthrough\n"
        "    }\n"
        "    forward . /etc/resolv.conf\n"
        "}\n"
    )


def desired_entries(
    endpoints: Iterable[Endpoint], owner: str, domain: str
) -> tuple[list[HostEntry], list[str]]:
    """Host entries for the endpoints inside `domain`, and notes on what was skipped."""
    entries: set[HostEntry] = set()
    skipped: list[str] = []
    for endpoint in endpoints:
        if not in_domain(endpoint.name, domain):
            skipped.append(f"{endpoint.name} ({endpoint.resource}): outside domain {domain}")
            continue
        for target in endpoint.targets:
            if is_ip(target):
                entries.add(HostEntry(endpoint.name, target, owner, endpoint.resource))
            else:
                skipped.append(
                    f"{endpoint.name} ({endpoint.resource}): target {target} is not an IP address"
                )
    return sorted(entries), skipped


def owner_of(line: str) -> str | None:
    """The owner id in a line's ownership comment, or None for a foreign line."""
    _, sep, comment = line.partition("#")
    if not sep:
        return None
    for word in comment.split():
        if word.startswith("owner="):
            return word[len("owner=") :]
    return None


def merge(existing: str, entries: Iterable[HostEntry], owner: str) -> str:
    """The new hosts file: every line not owned by `owner` as it was, then our entries."""
    kept = [
        line for line in existing.splitlines() if line.strip() != HEADER and owner_of(line) != owner
    ]
    while kept and not kept[-1].strip():
        kept.pop()
    lines = [HEADER, *(line for line in kept if line != HEADER)]
    lines.extend(entry.line() for entry in sorted(set(entries)))
    return "\n".join(lines) + "\n"


def owned_lines(text: str, owner: str) -> list[str]:
    return [line for line in text.splitlines() if owner_of(line) == owner]


def released(data: dict[str, str], owner: str) -> dict[str, str | None]:
    """The merge patch of `coredns-custom`'s data that takes `owner`'s contribution out:
    its host lines go; the server block and the hosts key go too when no line of another
    owner is left (a key set to None is removed by a merge patch). Every other key stays."""
    remaining = [
        line
        for line in str(data.get(HOSTS_KEY) or "").splitlines()
        if line.strip() and line.strip() != HEADER and owner_of(line) != owner
    ]
    if remaining:
        return {HOSTS_KEY: "\n".join([HEADER, *remaining]) + "\n"}
    return {key: None for key in (SERVER_KEY, HOSTS_KEY) if key in data}
