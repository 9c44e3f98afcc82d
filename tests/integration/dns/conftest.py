"""Fixtures for the DNS stub's integration tests: the DNSRecord CRD on the real API
server, `.venv/bin/platform run dns` as a real subprocess (writing a per-test ConfigMap
in the test's namespace, for a per-test domain), and a real CoreDNS serving the files."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import processes
from tests.support.binaries import require_binary
from tests.support.cli import PLATFORM
from tests.support.kwok import KwokCluster

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "dns" / "manifests"


@pytest.fixture(scope="session")
def dns_crd(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crd.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/dnsrecords.dns.platform.local")


@pytest.fixture
def domain(namespace: str) -> str:
    return f"{namespace}.test"


@pytest.fixture
def start_dns(
    cluster: KwokCluster, dns_crd: None, namespace: str, domain: str, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """start(kubeconfig=None, *extra) -> the running `platform run dns`; logs in tmp_path."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(kubeconfig: Path | None = None, *extra: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"dns-{len(started)}.log"
        process = processes.start(
            [
                PLATFORM,
                "run",
                "dns",
                "--kubeconfig",
                str(kubeconfig or cluster.kubeconfig),
                "--domain",
                domain,
                "--default-target",
                "10.43.0.80",
                "--configmap-namespace",
                namespace,
                "--configmap-name",
                "coredns-custom",
                "--owner-id",
                "platform-dns",
                "--log-level",
                "DEBUG",
                *extra,
            ],
            log=log,
        )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        processes.stop(process)
        assert process.returncode == 0, log.read_text()[-3000:]


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


@pytest.fixture
def coredns(tmp_path: Path) -> Iterator[CoreDNS]:
    server = CoreDNS(tmp_path / "coredns")
    yield server
    server.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    processes.wait_for(predicate, timeout, what, interval=0.2)


def settle(seconds: float) -> None:
    time.sleep(seconds)
