"""A real CoreDNS for the DNS stub's tests, serving the files of `coredns-custom` the way
k3s mounts them, and a polling wait for their assertions.

Used by tests/integration/dns/ (the `coredns` fixture in its conftest.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.support import processes
from tests.support.binaries import require_binary


class CoreDNS:
    """A real CoreDNS on 127.0.0.1:<free port> importing `*.server` from a directory,
    like k3s's Corefile imports /etc/coredns/custom/*.server."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("coredns")
        self.dir = workdir / "custom"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = processes.free_port()
        self.log = workdir / "coredns.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, data: dict[str, str]) -> None:
        """Write the ConfigMap's keys as files, as the kubelet would mount them (the only
        changes: the mount path and port 53, which needs root)."""
        for key, value in data.items():
            value = value.replace("/etc/coredns/custom", str(self.dir))
            if key.endswith(".server"):
                value = value.replace(":53 {", f":{self.port} {{")
            tmp = self.dir / f".{key}.tmp"
            tmp.write_text(value)
            tmp.replace(self.dir / key)

    def start(self) -> None:
        corefile = self.dir.parent / "Corefile"
        corefile.write_text(f"import {self.dir}/*.server\n")
        self.process = processes.start([self.binary, "-conf", corefile], log=self.log)
        processes.wait_for(self._answers, 20, "CoreDNS to answer")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"coredns exited: {self.log.read_text()[-2000:]}")
        self.query("probe.invalid")
        return True

    def query(self, name: str, rdtype: str = "A") -> tuple[str, list[str]]:
        """(rcode text, answer addresses)."""
        request = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        response = dns.query.udp(request, "127.0.0.1", port=self.port, timeout=2)
        addresses = [item.to_text() for rrset in response.answer for item in rrset]
        return dns.rcode.to_text(response.rcode()), addresses

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    processes.wait_for(predicate, timeout, what, interval=0.2)
