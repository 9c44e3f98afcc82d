"""Fixtures for the certs controller's integration tests: CRDs on the real API server and
`.venv/bin/platform run certs` as a real subprocess, watching only the test's namespace
(which is also its cluster resource namespace, so ClusterIssuer CA Secrets live there)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.cli import PLATFORM
from tests.support.kwok import KwokCluster

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "certs" / "manifests"


@pytest.fixture(scope="session")
def certs_crds(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crd.yaml"))
    for plural in ("issuers", "clusterissuers", "certificates"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.certs.platform.local")


@pytest.fixture
def start_certs(
    cluster: KwokCluster, certs_crds: None, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., object]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        process = processes.start(
            [
                PLATFORM,
                "run",
                "certs",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "--watch-namespace",
                namespace,
                "--cluster-resource-namespace",
                namespace,
                "--log-level",
                "DEBUG",
                *extra,
            ],
            log=tmp_path / f"certs-{len(started)}.log",
        )
        started.append(process)
        return process

    yield start
    for process in started:
        processes.stop(process)
        assert process.returncode == 0, (tmp_path / "certs-0.log").read_text()[-3000:]


@pytest.fixture
def certs_controller(start_certs: Callable[..., object]) -> object:
    return start_certs()
