"""Fixtures for the certs controller's integration tests: CRDs on the real API server and
`.venv/bin/platform run certs` as a real subprocess (tests/support/components.py), watching only the test's namespace
(which is also its cluster resource namespace, so ClusterIssuer CA Secrets live there)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.components import Component, launch
from tests.support.kwok import KwokCluster

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "certs" / "manifests"


@pytest.fixture(scope="session")
def certs_crds(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crd.yaml"))
    for plural in ("issuers", "clusterissuers", "certificates"):
        cluster.wait_established(f"{plural}.certs.platform.local")


@pytest.fixture
def start_certs(
    cluster: KwokCluster, certs_crds: None, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Component]]:
    started: list[Component] = []

    def start(*extra: str) -> Component:
        running = launch(
            "certs",
            [
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
            tmp_path / f"certs-{len(started)}.log",
        )
        started.append(running)
        return running

    yield start
    for running in started:
        assert running.stop() == 0, running.output()[-3000:]


@pytest.fixture
def certs_controller(start_certs: Callable[..., Component]) -> Component:
    return start_certs()
