"""What a real node changes on this machine, and how to put it back.

A kubelet, containerd, CNI and kube-proxy change the host itself: iptables chains, network
namespaces, a bridge and veths, mounts, sysctls and cgroups. `HostSnapshot` records what
was there before the real-node cluster started; `restore` removes what was added and sets
the sysctls back; `leftovers` lists what is still different, for the teardown's own check
and for the test session's leak check (tests/conftest.py). Pure host plumbing, called by
tests/support/realnode/cluster.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Sysctls that ip forwarding, kube-proxy and the kubelet set (the kubelet applies its
# "kernel defaults" at start); each is restored at teardown.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Chains made by the kubelet, kube-proxy and the CNI plugins (bridge ipMasq, portmap).
CHAIN_PREFIXES = ("KUBE-", "CNI-")
TABLES = ("filter", "nat", "mangle")
IPTABLES = ("iptables", "ip6tables")
NETNS_DIR = Path("/var/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)


def read_sysctl(key: str) -> str | None:
    try:
        return (Path("/proc/sys") / key).read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        (Path("/proc/sys") / key).write_text(value + "\n")


def chains(tool: str, table: str) -> set[str]:
    """The chains of one table (user-defined and built-in)."""
    result = _run(tool, "-w", "-t", table, "-S")
    return {
        line.split()[1] for line in result.stdout.splitlines() if line.startswith(("-N ", "-P "))
    }


def netns_names() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


def links(*selector: str) -> set[str]:
    """Network link names (`selector`: extra `ip link show` words, e.g. master BRIDGE)."""
    result = _run("ip", "-o", "link", "show", *selector)
    names = set()
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.add(parts[1].strip().split("@", 1)[0])
    return names


def mounts_under(prefixes: tuple[Path, ...]) -> list[str]:
    """Mount points below any of `prefixes`, deepest first (the order to unmount in)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


@dataclass
class HostSnapshot:
    """The host as it was before a real node started on it."""

    sysctls: dict[str, str | None] = field(default_factory=dict)
    chains: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(
            sysctls={key: read_sysctl(key) for key in SYSCTLS},
            chains={(tool, t): chains(tool, t) for tool in IPTABLES for t in TABLES},
            netns=netns_names(),
        )

    def save(self, path: Path) -> None:
        """Keep the snapshot on disk, so a run that was killed can be undone by the next."""
        path.write_text(
            json.dumps(
                {
                    "sysctls": self.sysctls,
                    "chains": [[t, table, sorted(c)] for (t, table), c in self.chains.items()],
                    "netns": sorted(self.netns),
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> HostSnapshot | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(
            sysctls=raw["sysctls"],
            chains={(t, table): set(c) for t, table, c in raw["chains"]},
            netns=set(raw["netns"]),
        )

    # ---- putting it back -------------------------------------------------------------

    def restore(self, owned_dirs: tuple[Path, ...], bridge: str, marker: str) -> None:
        """Undo what the node added: netns, links, iptables rules and chains, mounts,
        cgroups, sysctls. Safe to call twice, and after a crash half-way through."""
        # A pod's veth pair goes with its network namespace; the bridge goes last.
        for name in sorted(netns_names() - self.netns):
            if name.startswith("cni-"):
                _run("ip", "netns", "delete", name)
        if bridge in links():
            for name in sorted(links("master", bridge)):
                _run("ip", "link", "delete", name)
            _run("ip", "link", "delete", bridge)
        for tool in IPTABLES:
            for table in TABLES:
                self._drop_chains(tool, table, marker)
        for point in mounts_under(owned_dirs):
            _run("umount", "-l", point)
        _remove_cgroups("kubepods")
        for key, value in self.sysctls.items():
            if value is not None and read_sysctl(key) != value:
                write_sysctl(key, value)

    def _drop_chains(self, tool: str, table: str, marker: str) -> None:
        before = self.chains.get((tool, table), set())
        added = {c for c in chains(tool, table) - before if c.startswith(CHAIN_PREFIXES)}
        listing = _run(tool, "-w", "-t", table, "-S").stdout.splitlines()
        # Rules first (in any chain that stays) that jump to a chain going away or carry
        # this fixture's comment; then the chains themselves, emptied, then deleted.
        for rule in listing:
            if not rule.startswith("-A "):
                continue
            # Comments are quoted in `-S` output (the CNI plugins write `name: "..."`).
            parts = shlex.split(rule)
            chain = parts[1]
            if chain in added:
                continue
            target = parts[parts.index("-j") + 1] if "-j" in parts else ""
            if target in added or marker in rule:
                _run(tool, "-w", "-t", table, "-D", *parts[1:])
        for chain in sorted(added):
            _run(tool, "-w", "-t", table, "-F", chain)
        for chain in sorted(added):
            _run(tool, "-w", "-t", table, "-X", chain)

    # ---- checking ------------------------------------------------------------------------

    def leftovers(self, owned_dirs: tuple[Path, ...], bridge: str, marker: str) -> list[str]:
        """What is still different from the snapshot; empty when the host is as it was."""
        found = [f"network namespace {n}" for n in sorted(netns_names() - self.netns)]
        if bridge in links():
            found.append(f"bridge {bridge}")
            found += [f"veth {n} on {bridge}" for n in sorted(links("master", bridge))]
        for tool in IPTABLES:
            for table in TABLES:
                extra = {
                    c
                    for c in chains(tool, table) - self.chains.get((tool, table), set())
                    if c.startswith(CHAIN_PREFIXES)
                }
                found += [f"{tool} chain {table}/{c}" for c in sorted(extra)]
                rules = _run(tool, "-w", "-t", table, "-S").stdout
                found += [f"{tool} rule {table}: {r}" for r in rules.splitlines() if marker in r]
        found += [f"mount {p}" for p in mounts_under(owned_dirs)]
        found += [f"cgroup {p}" for p in _cgroups("kubepods")]
        for key, value in self.sysctls.items():
            now = read_sysctl(key)
            if value is not None and now != value:
                found.append(f"sysctl {key.replace('/', '.')} is {now}, was {value}")
        return found


def _cgroups(name: str) -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    return [p for p in CGROUP_ROOT.glob(f"*/{name}") if p.is_dir()]


def _remove_cgroups(name: str) -> None:
    """rmdir a cgroup tree in every v1 hierarchy, deepest first (cgroup dirs hold no
    files that can be deleted; an empty cgroup goes with rmdir)."""
    for top in _cgroups(name):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
