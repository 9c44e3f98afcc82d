"""The e2e tier: the whole `platform up`, on kwok with the components as host processes
(tests/support/hostplatform.py), and on a node whose pods really run (`real_node`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.binaries import require_binary
from tests.support.componentimage import ComponentImage
from tests.support.dockerd import DockerEngine
from tests.support.hostplatform import DOMAIN, HostPlatform
from tests.support.kwok import KUBE_BINARIES
from tests.support.realnode.cluster import REAL_NODE_BINARIES, RealNodeCluster, real_node_leftovers

__all__ = ["DOMAIN", "HostPlatform"]


@pytest.fixture(scope="package")
def real_node(
    session_dir: Path,
    component_image: ComponentImage,
    docker_engine: DockerEngine,
    request: pytest.FixtureRequest,
) -> Iterator[RealNodeCluster]:
    """kwokctl's control plane plus a real kubelet, containerd and kube-proxy, with
    CoreDNS, local-path and Traefik as k3s has them (tests/support/realnode/). Shared by
    this package's tests and taken down after them, so the rest of the run does not
    carry it; it must leave the host exactly as it found it (checked at session end)."""
    binaries = {name: require_binary(name) for name in KUBE_BINARIES + REAL_NODE_BINARIES}
    node = RealNodeCluster(workdir=session_dir / "real-node", binaries=binaries)
    node.up(component_image.tag, docker_engine.host)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nreal-node cluster up: {node.timings}")
    yield node
    node.down()
    real_node_leftovers.extend(f"real node: {item}" for item in node.leftovers())
