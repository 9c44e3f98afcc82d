"""Fixtures for the secrets controller's integration tests: real API server, real OpenBao,
the controller as a real process.

`bao` is an unsealed OpenBao with KV v2 at `secret/` and KV v1 at `kv1/`; `controller`
starts `.venv/bin/platform run secrets` (tests/support/components.py) watching only the
test's namespace; `secrets` creates stores and ExternalSecrets and waits on their status
and on the target Secret (tests/support/secrets.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from tests.support.components import Component as Controller
from tests.support.components import launch
from tests.support.kwok import KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer
from tests.support.secrets import MANIFESTS, Bao, Secrets


@pytest.fixture(scope="session")
def crds(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crds.yaml"))
    for plural in ("externalsecrets", "secretstores", "clustersecretstores"):
        cluster.wait_established(f"{plural}.secrets.platform.local")


@pytest.fixture
def bao(unsealed_vault: tuple[OpenBaoServer, InitResult]) -> Bao:
    server, init = unsealed_vault
    ready = Bao(server, init)
    ready.call("POST", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
    ready.call("POST", "sys/mounts/kv1", {"type": "kv", "options": {"version": "1"}})
    return ready


@pytest.fixture
def controller_factory(tmp_path: Path) -> Iterator[Callable[[list[str]], Controller]]:
    started: list[Controller] = []

    def make(args: list[str]) -> Controller:
        log = tmp_path / f"secrets-{len(started)}.log"
        running = launch("secrets", ["--log-level=DEBUG", *args], log)
        started.append(running)
        return running

    yield make
    for running in started:
        assert running.stop() == 0, running.output()[-3000:]


@pytest.fixture
def controller(
    cluster: KwokCluster,
    crds: None,
    namespace: str,
    controller_factory: Callable[[list[str]], Controller],
) -> Controller:
    return controller_factory([f"--kubeconfig={cluster.kubeconfig}", f"--namespace={namespace}"])


@pytest.fixture
def secrets(
    cluster: KwokCluster, kube: KubeClient, namespace: str, bao: Bao, crds: None
) -> Secrets:
    return Secrets(cluster, kube, namespace, bao)
