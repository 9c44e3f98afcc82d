"""Fixtures that start real components: a Kubernetes control plane, OpenBao, git, Docker.

Every fixture starts real processes (see tests/support/) and stops them; at the end of
the session `pytest_sessionfinish` fails the run if any process this run started is
still alive. In CI (CI=true) a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from testenv import locate
from tests.support import processes
from tests.support.baseimage import TAG as BASE_TAG
from tests.support.baseimage import build_base_image
from tests.support.binaries import in_ci, require_binary
from tests.support.componentimage import ComponentImage, build_component_image
from tests.support.dockerd import DockerEngine, ensure_engine
from tests.support.gitserver import GitServer
from tests.support.hostplatform import HostPlatform, host_platform_fixture
from tests.support.kwok import KUBE_BINARIES, KwokCluster
from tests.support.openbao import InitResult, OpenBaoServer, initialise_and_unseal
from tests.support.realnode.cluster import real_node_leftovers


def _binary_version(name: str, *args: str) -> str:
    path = locate(name)
    if path is None:
        return "missing"
    result = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"kube-apiserver: {_binary_version('kube-apiserver', '--version')}",
        f"etcd: {_binary_version('etcd', '--version')}",
        f"openbao: {_binary_version('bao', 'version')}",
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = processes.leaked() + real_node_leftovers
    if left:
        processes.kill_leaked()
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("processes left behind by the test run (now killed):", red=True)
            for line in left:
                reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


# ---- Kubernetes ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster(session_dir: Path, request: pytest.FixtureRequest) -> Iterator[KwokCluster]:
    """One real control plane per test run; tests isolate themselves by namespace."""
    binaries = {name: require_binary(name) for name in KUBE_BINARIES}
    kwok = KwokCluster(
        name=f"pt-{uuid.uuid4().hex[:8]}", workdir=session_dir / "kwok-cluster", binaries=binaries
    )
    try:
        kwok.create()
    except Exception:
        kwok.delete()
        raise
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\ntest cluster: kube-apiserver {kwok.version()} at {kwok.server()}")
    yield kwok
    kwok.delete()


@pytest.fixture(scope="session")
def kube(cluster: KwokCluster) -> Iterator[KubeClient]:
    """A JSON API client for the session's cluster (the project's own adapter)."""
    client = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(cluster: KwokCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---- OpenBao ---------------------------------------------------------------------------


@pytest.fixture
def vault(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OpenBaoServer]:
    """A fresh, uninitialised OpenBao with raft storage: init and unseal are real."""
    server = OpenBaoServer(binary=require_binary("bao"), workdir=tmp_path / "openbao")
    server.start()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and not getattr(request.config, "_openbao_version_shown", False):
        reporter.write_line(f"\nopenbao server version: {server.version()}")
        request.config._openbao_version_shown = True  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def unsealed_vault(vault: OpenBaoServer) -> tuple[OpenBaoServer, InitResult]:
    """An OpenBao already initialised (3 shares, threshold 2) and unsealed."""
    return vault, initialise_and_unseal(vault)


# ---- git -------------------------------------------------------------------------------


@pytest.fixture
def bare_repo(tmp_path: Path) -> Path:
    """An empty bare git repository on disk (the git-server tests serve these over HTTP)."""
    path = tmp_path / "repos" / "gitops.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(path)], check=True)
    return path


# ---- a whole platform -----------------------------------------------------------------


@pytest.fixture
def host_platform(
    cluster: KwokCluster,
    vault: OpenBaoServer,
    git_server_factory: Callable[..., GitServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[HostPlatform]:
    """Everything `platform up --engine existing` needs, in the environment, with the
    in-house components running as host processes (tests/support/hostplatform.py)."""
    yield from host_platform_fixture(cluster, vault, git_server_factory, tmp_path, monkeypatch)


# ---- Docker ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine(session_dir: Path) -> Iterator[DockerEngine]:
    """A real Docker engine: the running one, or dockerd started for this run."""
    try:
        engine = ensure_engine(session_dir)
    except (FileNotFoundError, TimeoutError) as error:
        message = f"no Docker engine: {error}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """A slim Debian base made here (tests/support/baseimage.py), built when absent."""
    try:
        seconds = build_base_image(docker_engine.host)
    except FileNotFoundError as error:
        if in_ci():
            pytest.fail(str(error), pytrace=False)
        pytest.skip(str(error))
    if seconds:
        print(f"\nbuilt {BASE_TAG} from Debian packages in {seconds:.1f}s")
    return BASE_TAG


@pytest.fixture(scope="session")
def component_image(base_image: str) -> ComponentImage:
    """The pinned component image, built on the local base by the real CLI."""
    return build_component_image(base_image)


@pytest.fixture(autouse=True)
def _isolated_platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the real ~/.platform: each gets its own PLATFORM_HOME."""
    home = tmp_path / "platform-home"
    monkeypatch.setenv("PLATFORM_HOME", str(home))
    os.environ.setdefault("NO_COLOR", "1")
    return home


# ---- git server ------------------------------------------------------------------------


@pytest.fixture
def git_server_factory(tmp_path: Path) -> Iterator[Callable[..., GitServer]]:
    """Start git servers (real processes) with users admin (read-write) and reader
    (read-only); keyword arguments go to tests.support.gitserver.GitServer
    (webhook_urls, webhook_secret, extra_args). All are stopped afterwards."""
    started: list[GitServer] = []

    def make(**options: Any) -> GitServer:
        server = GitServer(workdir=tmp_path / f"gitserver-{len(started)}", **options)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def git_server(git_server_factory: Callable[..., GitServer]) -> GitServer:
    """A running git server with users admin (read-write) and reader (read-only)."""
    return git_server_factory()
