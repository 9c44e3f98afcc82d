"""Fixtures for the DNS stub's integration tests: the DNSRecord CRD on the real API
server, `.venv/bin/platform run dns` as a real subprocess (tests/support/components.py,
writing a per-test ConfigMap in the test's namespace, for a per-test domain), and a real
CoreDNS serving the files (tests/support/coredns.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.components import Component, launch
from tests.support.coredns import CoreDNS
from tests.support.kwok import KwokCluster

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "dns" / "manifests"


@pytest.fixture(scope="session")
def dns_crd(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crd.yaml"))
    cluster.wait_established("dnsrecords.dns.platform.local")


@pytest.fixture
def domain(namespace: str) -> str:
    return f"{namespace}.test"


@pytest.fixture
def start_dns(
    cluster: KwokCluster, dns_crd: None, namespace: str, domain: str, tmp_path: Path
) -> Iterator[Callable[..., Component]]:
    """start(kubeconfig=None, *extra, ready=True) -> the running `platform run dns`
    (tests/support/components.py); logs in tmp_path. `ready=False` for a stub that
    cannot list every source (its /readyz stays 503)."""
    started: list[Component] = []

    def start(kubeconfig: Path | None = None, *extra: str, ready: bool = True) -> Component:
        running = launch(
            "dns",
            [
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
            tmp_path / f"dns-{len(started)}.log",
            wait_ready=ready,
        )
        started.append(running)
        return running

    yield start
    for running in started:
        assert running.stop() == 0, running.output()[-3000:]


@pytest.fixture
def coredns(tmp_path: Path) -> Iterator[CoreDNS]:
    server = CoreDNS(tmp_path / "coredns")
    yield server
    server.stop()
