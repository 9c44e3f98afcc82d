"""`platform up` as users run it: every component a pod from the shipped image and
manifests, on a node whose pods really run (tests/support/realnode/).

No host processes: the git server with its volume, OpenBao as a StatefulSet on raft with
the in-cluster unsealer, the reconciler and the secrets, certs and dns controllers all
run in containerd under a real kubelet; CoreDNS, local-path and Traefik are set up the
way k3s sets them up. Two runs, one for each way the bootstrap reaches git and Vault
(port-forwards through the API, and Traefik's ingress), each ending with `platform down`
leaving every object of the cluster as it found it. The same test against the k3d engine
runs where a k3s image exists and skips, saying why, where none can be had.

The figures it prints (cold up, per stage, no-op up, the platform's memory, restart to
unsealed) are recorded in bench/README.md.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.remote.webdriver import WebDriver

from bootstrap.images import COMPONENT_IMAGE, K3S_IMAGE
from bootstrap.state import PlatformState
from testenv import terraform_cli_config
from tests.support.binaries import require_binary
from tests.support.browser import Dashboard, body, chromium, live, row, shot, wait
from tests.support.cli import json_events, run_platform
from tests.support.processes import free_port, start, stop, wait_for
from tests.support.realnode import inspect
from tests.support.realnode.cluster import INGRESS_IP, RealNodeCluster

pytestmark = pytest.mark.e2e

DOMAIN = "e2e.test"
HOSTS_FILE = Path("/etc/hosts")
# Where each in-house component runs: namespace, pod selector, pods expected.
COMPONENTS = (
    ("platform-git", "app.kubernetes.io/name=platform-gitserver", 1),
    ("platform-vault", "app.kubernetes.io/name=openbao", 1),
    ("platform-vault", "app.kubernetes.io/name=vault-unsealer", 1),
    ("platform-system", "app.kubernetes.io/name=platform-reconciler", 1),
    ("platform-secrets", "app.kubernetes.io/name=secrets-controller", 1),
    ("platform-certs", "app.kubernetes.io/name=platform-certs", 1),
    ("platform-dns", "app.kubernetes.io/name=platform-dns", 1),
)
PLATFORM_NAMESPACES = sorted({c[0] for c in COMPONENTS} | {"demo"})


@dataclass
class Platform:
    """One platform under test: how to reach its cluster and ingress, and its state."""

    workdir: Path
    access: str
    # Traefik's address and HTTPS port as this machine reaches them.
    ingress: tuple[str, int]
    # None: the kubeconfig the engine wrote into the state dir (k3d).
    kubeconfig_path: Path | None = None
    # The node is this machine, so the pods' cgroups (their memory) can be read here.
    pods_on_this_host: bool = True

    @property
    def state(self) -> PlatformState:
        return PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")

    @property
    def kubeconfig(self) -> Path:
        return self.kubeconfig_path or self.state.root / "kubeconfig"

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(require_binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> dict[str, Any]:
        out = self.kubectl(*args, "-o", "json", check=False)
        return json.loads(out) if out.strip() else {}


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "PLATFORM_DOMAIN": DOMAIN,
        "PLATFORM_TERRAFORM_BIN": str(require_binary("tofu")),
        "TF_CLI_CONFIG_FILE": str(terraform_cli_config()),
        "CHECKPOINT_DISABLE": "1",
        "PLATFORM_STAGE_TIMEOUT": "300",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def hosts_file_kept() -> Iterator[None]:
    """Whatever the test did, `platform down` must leave /etc/hosts as it was."""
    before = HOSTS_FILE.read_bytes()
    yield
    if HOSTS_FILE.read_bytes() != before:
        HOSTS_FILE.write_bytes(before)
        pytest.fail("`platform down` left the hosts file changed", pytrace=False)


@pytest.fixture(params=["port-forward", "ingress"])
def platform(
    request: pytest.FixtureRequest,
    real_node: RealNodeCluster,
    platform_env: None,
    hosts_file_kept: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Platform]:
    access = str(request.param)
    monkeypatch.setenv("PLATFORM_ENGINE", "existing")
    monkeypatch.setenv("PLATFORM_KUBECONFIG", str(real_node.kubeconfig))
    monkeypatch.setenv("PLATFORM_GIT_ACCESS", access)
    monkeypatch.setenv("PLATFORM_VAULT_ACCESS", access)
    try:
        yield Platform(tmp_path, access, (INGRESS_IP, 443), real_node.kubeconfig)
    finally:
        # Whatever the test did, the node is handed on clean (down is idempotent).
        run_platform("down", timeout=600)


def test_platform_up_on_a_real_node(platform: Platform) -> None:
    before = inspect.all_objects(platform.kubectl)
    figures = the_whole_platform(platform, full=platform.access == "port-forward")
    print(f"\nreal-node figures ({platform.access}): {json.dumps(figures)}")

    down = run_platform("down", timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr
    # Every namespaced and cluster-scoped object, ConfigMaps in kube-system included.
    inspect.wait_for_objects(platform.kubectl, before, timeout=180)


def test_platform_up_on_k3d(
    platform_env: None, hosts_file_kept: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same e2e on the default engine, as users run it. It needs the k3s node image,
    which no registry here can give; where it is present, it runs."""
    present = subprocess.run(
        ["docker", "image", "inspect", K3S_IMAGE], capture_output=True, check=False
    )
    if present.returncode != 0:
        pytest.skip(
            f"k3d needs the {K3S_IMAGE} node image, which is not on this machine and cannot "
            "be pulled here (no container registry is reachable)"
        )
    monkeypatch.setenv("PLATFORM_ENGINE", "k3d")
    platform = Platform(tmp_path, "ingress", ("127.0.0.1", 443), pods_on_this_host=False)
    try:
        figures = the_whole_platform(platform, full=True)
        print(f"\nk3d figures: {json.dumps(figures)}")
    finally:
        down = run_platform("down", timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr


def the_whole_platform(platform: Platform, full: bool) -> dict[str, Any]:
    """`platform up` and what a user then sees and does; `full` adds the changes and
    restarts (a commit, the reconciler and OpenBao pods deleted). The figures."""
    if platform.access == "ingress":
        # This machine reaches git.<domain> and vault.<domain> at the ingress.
        wrote = run_platform("hosts", "--write", "--address", platform.ingress[0])
        assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    figures = up_cold(platform)
    every_component_is_a_ready_pod_of_the_image(platform)
    if platform.pods_on_this_host:
        figures["platform_pods_rss_mb"] = platform_memory_mb(platform)
    the_demo_answers_over_https_through_traefik(platform)
    the_demo_name_resolves_inside_the_cluster(platform)
    the_vault_value_reaches_the_demo_pod(platform)
    the_dashboard_shows_every_application_healthy(platform)
    if full:
        a_commit_scales_the_demo_and_the_new_pods_run(platform)
        the_reconciler_comes_back_and_converges(platform)
        figures["restart_to_unsealed_s"] = openbao_restarts_sealed_and_is_unsealed(platform)
    figures["noop_up_s"] = up_again_is_a_fast_noop(platform)
    return figures


# ---- the steps -------------------------------------------------------------------------


def up_cold(platform: Platform) -> dict[str, Any]:
    started = time.monotonic()
    up = run_platform("up", "-o", "json", timeout=1200)
    took = time.monotonic() - started
    assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
    summary = json_events(up.stdout)[-1]
    assert {s["outcome"] for s in summary["stages"]} == {"done"}
    apps = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    assert {"root", "gitserver", "vault", "reconciler", "secrets", "certs", "dns", "demo"} <= {
        r["name"] for r in apps
    }
    assert all(r["sync"] == "Synced" and r["health"] == "Healthy" for r in apps), apps
    return {
        "cold_up_s": round(took, 1),
        "stages_s": {s["stage"]: s["seconds"] for s in summary["stages"]},
    }


def every_component_is_a_ready_pod_of_the_image(platform: Platform) -> None:
    for namespace, selector, count in COMPONENTS:
        found = inspect.pods(platform.kubectl, namespace, selector)
        assert len(found) == count, (namespace, selector, [p["metadata"]["name"] for p in found])
        for pod in found:
            assert inspect.running_and_ready(pod), (namespace, pod["status"])
            images = {c["image"] for c in pod["spec"]["containers"]}
            if selector != "app.kubernetes.io/name=openbao":
                assert images == {COMPONENT_IMAGE}, images
    # OpenBao is a StatefulSet whose raft data lives on a volume local-path provisioned;
    # the git server keeps its repositories on one too.
    for namespace in ("platform-git", "platform-vault"):
        claims = platform.json("get", "pvc", "-n", namespace)["items"]
        assert claims and all(c["status"]["phase"] == "Bound" for c in claims), claims
        assert all(c["spec"]["storageClassName"] == "local-path" for c in claims), claims
    statefulset = platform.json("get", "statefulset", "openbao", "-n", "platform-vault")
    assert statefulset["status"].get("readyReplicas") == 1


def platform_memory_mb(platform: Platform) -> float:
    total = 0
    for namespace in PLATFORM_NAMESPACES:
        total += sum(inspect.pod_rss_bytes(p) for p in inspect.pods(platform.kubectl, namespace))
    return round(total / 1e6, 1)


def _https_get(ingress: tuple[str, int], host: str, ca_file: Path) -> tuple[int, bytes]:
    """GET / from Traefik's HTTPS port, with `host` as SNI and Host, verified by the CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(ingress, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    status = int(response.split(b" ", 2)[1])
    return status, response


def the_demo_answers_over_https_through_traefik(platform: Platform) -> None:
    ca = platform.state.root / "ca.crt"
    host = f"demo.{DOMAIN}"
    result: dict[str, int] = {}

    def answers() -> bool:
        result["status"], _ = _https_get(platform.ingress, host, ca)
        return result["status"] == 200

    wait_for(answers, timeout=90, what=f"https://{host} to answer through Traefik", interval=1)


def the_demo_name_resolves_inside_the_cluster(platform: Platform) -> None:
    """A pod asks CoreDNS, which serves the dns stub's entries from coredns-custom: the
    name points where the ingress controller says it is (the Ingress's status)."""
    status = platform.json("get", "ingress", "demo", "-n", "demo")["status"]
    address = status["loadBalancer"]["ingress"][0]["ip"]
    lookup = f"import socket; print(socket.gethostbyname('demo.{DOMAIN}'))"
    platform.kubectl("create", "namespace", "probe-dns", check=False)
    try:
        wait_for(
            lambda: (
                inspect.run_in_pod(
                    platform.kubectl, "probe-dns", COMPONENT_IMAGE, ["python", "-c", lookup]
                ).strip()
                == address
            ),
            timeout=120,
            what=f"demo.{DOMAIN} to resolve to the ingress ({address}) from a pod",
            interval=2,
        )
    finally:
        platform.kubectl("delete", "namespace", "probe-dns", "--wait=true", check=False)


def the_vault_value_reaches_the_demo_pod(platform: Platform) -> None:
    generated = json.loads(platform.state.read_secret("terraform-vars.json") or "{}")
    expected = str(generated["demo_secrets"]["demo/app"]["password"])

    def in_the_pod() -> bool:
        value = platform.kubectl(
            "exec", "-n", "demo", "deploy/demo", "--", "cat", "/etc/demo/credentials/password",
            check=False,
        )  # fmt: skip
        return value.strip() == expected

    wait_for(in_the_pod, timeout=90, what="Vault's value in the demo pod", interval=1)


def the_dashboard_shows_every_application_healthy(platform: Platform) -> None:
    """`platform ui` on the real node, in a real headless Chromium (issue 20): the
    overview and the Applications page show every Application Synced and Healthy, as
    `platform apps` does. A screenshot of each goes to the test's directory."""
    apps = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    names = sorted(str(app["name"]) for app in apps)
    folder = platform.workdir / f"ui-{platform.access}"
    folder.mkdir(parents=True, exist_ok=True)
    dashboard = Dashboard(folder)
    try:
        with chromium(folder / "profile", folder / "chromedriver.log") as browser:
            browser.get(dashboard.url)
            wait(browser, live, "the live event stream", timeout=60)
            for name in names:

                def healthy(driver: WebDriver, name: str = name) -> bool:
                    shown = row(driver, "components", name)
                    return "Synced" in shown and "Healthy" in shown

                wait(browser, healthy, f"{name} Synced and Healthy on the overview")
            assert f"{len(names)}/{len(names)} ready" in body(browser)
            shot(browser, folder, "overview")
            browser.get(dashboard.base + "/apps")
            wait(browser, live, "the live event stream", timeout=60)
            for name in names:
                text = row(browser, "apps", name)
                assert "Synced" in text and "Healthy" in text, (name, text)
            shot(browser, folder, "applications")
    finally:
        dashboard.stop()


@contextmanager
def git_remote(platform: Platform) -> Iterator[str]:
    """The GitOps repository's URL with the read-write login, as a person reaches it:
    through the ingress, or through `kubectl port-forward` (what `platform git url` says)."""
    password = (platform.state.read_secret("git-password") or "").strip()
    if platform.access == "ingress":
        yield f"http://platform:{password}@git.{DOMAIN}/gitops.git"
        return
    port = free_port()
    forward = start(
        [
            str(require_binary("kubectl")), "--kubeconfig", str(platform.kubeconfig),
            "port-forward", "-n", "platform-git", "svc/platform-gitserver", f"{port}:80",
        ],
        platform.workdir / "port-forward.log",
    )  # fmt: skip
    try:
        wait_for(lambda: port_open(port), timeout=30, what="kubectl port-forward to listen")
        yield f"http://platform:{password}@127.0.0.1:{port}/gitops.git"
    finally:
        stop(forward)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def a_commit_scales_the_demo_and_the_new_pods_run(platform: Platform) -> None:
    work = platform.workdir / "clone"
    git = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@test"]
    with git_remote(platform) as remote:
        subprocess.run([*git, "clone", "-q", remote, str(work)], check=True, timeout=60)
        path = next(work.glob("apps/demo/*deployment*.yaml"))
        deployment = yaml.safe_load(path.read_text())
        deployment["spec"]["replicas"] = 2
        path.write_text(yaml.safe_dump(deployment, sort_keys=False))
        subprocess.run([*git, "-C", str(work), "commit", "-qam", "two demo replicas"], check=True)
        subprocess.run(
            [*git, "-C", str(work), "push", "-q", "origin", "HEAD"], check=True, timeout=60
        )
    seconds = inspect.wait_ready(
        platform.kubectl, "demo", "app.kubernetes.io/name=demo", count=2, timeout=120
    )
    print(f"push to two running demo pods: {seconds:.1f}s")


def the_reconciler_comes_back_and_converges(platform: Platform) -> None:
    selector = "app.kubernetes.io/name=platform-reconciler"
    platform.kubectl("delete", "pod", "-n", "platform-system", "-l", selector, "--wait=false")
    seconds = inspect.wait_ready(platform.kubectl, "platform-system", selector, 1, timeout=120)
    # The new reconciler repairs drift: a managed object deleted by hand comes back.
    platform.kubectl("delete", "configmap", "demo-page", "-n", "demo")
    wait_for(
        lambda: bool(platform.json("get", "configmap", "demo-page", "-n", "demo")),
        timeout=90,
        what="the restarted reconciler to restore the demo ConfigMap",
        interval=1,
    )
    print(f"reconciler pod replaced and ready: {seconds:.1f}s")


def openbao_sealed(platform: Platform) -> bool | None:
    """OpenBao's seal state as its own CLI in the pod reports it (None: no answer)."""
    out = platform.kubectl(
        "exec", "-n", "platform-vault", "openbao-0", "--", "bao", "status", "-format=json",
        check=False,
    )  # fmt: skip
    try:
        return bool(json.loads(out)["sealed"])
    except (ValueError, KeyError):
        return None


def openbao_restarts_sealed_and_is_unsealed(platform: Platform) -> float:
    old_uid = platform.json("get", "pod", "openbao-0", "-n", "platform-vault")["metadata"]["uid"]
    unseals_before = unsealer_unseals(platform)
    started = time.monotonic()
    platform.kubectl("delete", "pod", "openbao-0", "-n", "platform-vault", "--wait=false")
    seen_sealed: list[bool] = []

    def unsealed_new_pod() -> bool:
        pod = platform.json("get", "pod", "openbao-0", "-n", "platform-vault")
        if not pod or pod["metadata"]["uid"] == old_uid:
            return False
        sealed = openbao_sealed(platform)
        if sealed:
            seen_sealed.append(True)
        return sealed is False

    wait_for(unsealed_new_pod, timeout=180, what="the new OpenBao pod to be unsealed", interval=0.5)
    seconds = time.monotonic() - started
    # A raft node restarts sealed, and nothing but the in-cluster unsealer unseals it
    # here: its log has one more unseal than before (it can win the race before the
    # first look at the new pod, so `seen_sealed` alone is not the witness).
    assert unsealer_unseals(platform) > unseals_before, seen_sealed
    return round(seconds, 1)


def unsealer_unseals(platform: Platform) -> int:
    """How many times the in-cluster unsealer has unsealed Vault (its log lines)."""
    log = platform.kubectl("logs", "-n", "platform-vault", "deploy/vault-unsealer")
    return sum("unsealed Vault" in line for line in log.splitlines())


def up_again_is_a_fast_noop(platform: Platform) -> float:
    wait_for(
        lambda: all(
            r["sync"] == "Synced" and r["health"] == "Healthy"
            for r in json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
        ),
        timeout=180,
        what="every Application to be Synced and Healthy again",
        interval=2,
    )
    started = time.monotonic()
    again = run_platform("up", "-o", "json", timeout=300)
    seconds = time.monotonic() - started
    assert again.returncode == 0, again.stdout[-3000:]
    assert {s["outcome"] for s in json_events(again.stdout)[-1]["stages"]} == {"verified"}
    return round(seconds, 2)
