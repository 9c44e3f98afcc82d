"""A whole platform on the test environment, for e2e and bootstrap tests.

`platform up --engine existing` runs against the test cluster with the project's git
server and a real OpenBao as the platform's external git server and Vault, and the
in-house components as host processes (`platform run ...`). kwok runs no containers, so
the Deployments GitOps delivers become Available without doing anything; the host
processes do the real work against the same API server, the way operator projects run
controllers locally. The `host_platform` fixture (tests/conftest.py) builds it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from testenv import terraform_cli_config
from tests.support import processes
from tests.support.binaries import require_binary
from tests.support.cli import PLATFORM, run_platform
from tests.support.gitserver import ADMIN, READER, GitServer
from tests.support.ingress import IngressStatusPublisher
from tests.support.kwok import KwokCluster
from tests.support.openbao import OpenBaoServer

DOMAIN = "e2e.test"


@dataclass
class HostPlatform:
    """What `platform up` needs in its environment, and the host processes behind it."""

    cluster: KwokCluster
    git: GitServer
    vault: OpenBaoServer
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    components: dict[str, object] = field(default_factory=dict)
    reconciler_port: int = 0

    def stop_components(self) -> None:
        """Stop the host processes (in a cluster, `platform down` deletes their pods; on
        the host they must stop first or the reconciler would put back what down deletes)."""
        for process in self.components.values():
            processes.stop(process)  # type: ignore[arg-type]

    def log(self, component: str) -> str:
        path = self.workdir / f"{component}.log"
        return path.read_text() if path.exists() else ""


def _secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def host_platform_fixture(
    cluster: KwokCluster,
    vault: OpenBaoServer,
    git_server_factory: Callable[..., GitServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[HostPlatform]:
    workdir = tmp_path / "host-platform"
    workdir.mkdir()
    port = processes.free_port()
    hook_secret = secrets.token_hex(16)
    git = git_server_factory(
        webhook_urls=[f"http://127.0.0.1:{port}/webhook"], webhook_secret=hook_secret.encode()
    )
    host = HostPlatform(cluster, git, vault, workdir, reconciler_port=port)
    rw = _secret_file(workdir / "git-rw", git.passwords[ADMIN])
    ro = _secret_file(workdir / "git-ro", git.passwords[READER])
    host.env = {
        "PLATFORM_ENGINE": "existing",
        "PLATFORM_KUBECONFIG": str(cluster.kubeconfig),
        "PLATFORM_DOMAIN": DOMAIN,
        "PLATFORM_GIT_URL": git.url,
        "PLATFORM_GIT_USERNAME": ADMIN,
        "PLATFORM_GIT_PASSWORD_FILE": str(rw),
        "PLATFORM_GIT_READONLY_USERNAME": READER,
        "PLATFORM_GIT_READONLY_PASSWORD_FILE": str(ro),
        "PLATFORM_VAULT_ADDRESS": vault.address,
        "PLATFORM_TERRAFORM_BIN": str(require_binary("tofu")),
        "TF_CLI_CONFIG_FILE": str(terraform_cli_config()),
        "CHECKPOINT_DISABLE": "1",
        "PLATFORM_STAGE_TIMEOUT": "120",
    }
    for key, value in host.env.items():
        monkeypatch.setenv(key, value)

    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig)]
    credentials = _secret_file(
        workdir / "git-credentials",
        git.url.replace("http://", f"http://{READER}:{git.passwords[READER]}@", 1),
    )
    hook_file = _secret_file(workdir / "webhook-secret", hook_secret)
    commands = {
        "reconciler": [
            "--git-credentials-file",
            str(credentials),
            "--webhook-secret-file",
            str(hook_file),
            "--listen",
            f"127.0.0.1:{port}",
            "--no-leader-elect",
            "--cache-dir",
            str(workdir / "cache"),
        ],
        "secrets": ["--listen", f"127.0.0.1:{processes.free_port()}"],
        "certs": [],
        "dns": ["--domain", DOMAIN, "--default-target", "127.0.0.1"],
    }
    started = []
    publisher = IngressStatusPublisher(KubeClient.from_kubeconfig(str(cluster.kubeconfig)))
    publisher.start()
    try:
        for component, extra in commands.items():
            started.append(
                processes.start(
                    [PLATFORM, "run", component, *kubeconfig, *extra], workdir / f"{component}.log"
                )
            )
        host.components = dict(zip(commands, started, strict=True))
        yield host
    finally:
        # The cluster is shared by the whole session: take this platform out of it
        # (components first, or the reconciler would put back what down deletes).
        for process in started:
            processes.stop(process)
        run_platform("down", timeout=300)
        publisher.stop()
