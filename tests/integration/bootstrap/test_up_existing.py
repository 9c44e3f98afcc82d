"""`platform up --engine existing` against the real test cluster: resume, locks, kill -9, down.

Everything here runs the real console script as a subprocess against the real
kube-apiserver; failures are made by real conditions (a kubeconfig that does not exist
yet, an API address that accepts connections and never answers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.state import PlatformState
from tests.support import processes
from tests.support.cli import json_events, run_platform, start_platform
from tests.support.hostplatform import HostPlatform
from tests.support.kwok import KwokCluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("platform_env")]


def snapshot(cluster: KwokCluster) -> dict[str, list[str]]:
    """What `down` must leave as it found: namespaces, CRDs, cluster RBAC."""
    kinds = ("namespaces", "customresourcedefinitions", "clusterroles", "clusterrolebindings")
    result = {}
    for kind in kinds:
        items = json.loads(cluster.kubectl("get", kind, "-o", "json"))["items"]
        result[kind] = sorted(
            i["metadata"]["name"] for i in items if not i["metadata"]["name"].startswith("t-")
        )
    return result


def test_up_status_down_leaves_the_cluster_as_found(
    cluster: KwokCluster, platform_env: HostPlatform, tmp_path: Path
) -> None:
    before = snapshot(cluster)
    up = run_platform(
        "up", "--engine", "existing", "--kubeconfig", str(cluster.kubeconfig), "-o", "json"
    )
    assert up.returncode == 0, up.stdout + up.stderr
    events = json_events(up.stdout)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["ok"] is True
    assert [s["stage"] for s in summary["stages"]][:3] == ["preflight", "tools", "cluster"]
    assert {e["event"] for e in events} >= {"begin", "stage_started", "stage_finished", "summary"}

    status = run_platform("status", "-o", "json")
    assert status.returncode == 0, status.stdout + status.stderr
    state = json_events(status.stdout)[-1]
    assert state["cluster"]["ready"] is True and "v1.34" in state["cluster"]["detail"]

    platform_env.stop_components()
    down = run_platform("down", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "is down" in down.stdout
    assert snapshot(cluster) == before
    assert not PlatformState(Path(os.environ["PLATFORM_HOME"]), "local").exists()
    again = run_platform("down")  # idempotent
    assert again.returncode == 0 and "does not exist" in again.stdout


def test_a_failed_stage_stops_with_a_hint_and_the_next_run_resumes_there(
    cluster: KwokCluster, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "later" / "kubeconfig"
    first = run_platform("up", "--engine", "existing", "--kubeconfig", str(kubeconfig))
    assert first.returncode == 1
    assert "Error: " in first.stderr and "To fix: " in first.stderr and "Log: " in first.stderr
    assert "Error: " not in first.stdout  # errors go to stderr, once
    assert str(kubeconfig) in first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    recorded = state.load()["stages"]
    assert recorded["preflight"]["outcome"] == "done"
    assert recorded["cluster"]["outcome"] == "failed" and recorded["cluster"]["hint"]
    preflight_started = recorded["preflight"]["started"]

    kubeconfig.parent.mkdir(parents=True)
    shutil.copy(cluster.kubeconfig, kubeconfig)  # the fix
    second = run_platform("up", "-o", "json")  # engine and kubeconfig were saved with the platform
    assert second.returncode == 0, second.stdout + second.stderr
    outcomes = {s["stage"]: s["outcome"] for s in json_events(second.stdout)[-1]["stages"]}
    assert outcomes["preflight"] == "verified" and outcomes["cluster"] == "done"
    assert state.load()["stages"]["preflight"]["started"] == preflight_started  # not re-run


@pytest.fixture
def silent_api(tmp_path: Path, cluster: KwokCluster) -> Iterator[Path]:
    """A kubeconfig whose server accepts TCP connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    config = cluster.kubeconfig.read_text()
    server = cluster.server()
    path = tmp_path / "silent-kubeconfig"
    path.write_text(config.replace(server, f"https://127.0.0.1:{port}"))
    yield path
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def wait_for_stage_running(stage: str, timeout: float = 30) -> None:
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    processes.wait_for(
        lambda: (
            state.exists() and state.load()["stages"].get(stage, {}).get("outcome") == "running"
        ),
        timeout=timeout,
        what=f"stage {stage} to be running",
        interval=0.02,
    )


def test_second_up_on_the_same_platform_is_refused_naming_the_first(
    silent_api: Path, tmp_path: Path
) -> None:
    first = start_platform(
        "up", "--engine", "existing", "--kubeconfig", str(silent_api), log=tmp_path / "first.log"
    )
    try:
        wait_for_stage_running("cluster")
        second = run_platform("up")
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr and "busy" in second.stderr
    finally:
        processes.stop(first)


def test_ctrl_c_stops_at_once_records_it_and_exits_130(silent_api: Path, tmp_path: Path) -> None:
    first = start_platform(
        "up", "--engine", "existing", "--kubeconfig", str(silent_api), log=tmp_path / "up.log"
    )
    wait_for_stage_running("cluster")
    started = time.monotonic()
    os.kill(first.pid, signal.SIGINT)
    assert first.wait(timeout=10) == 130
    assert time.monotonic() - started < 5
    output = (tmp_path / "up.log").read_text()
    assert "interrupted" in output.lower() and "is up" not in output
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    assert state.load()["stages"]["cluster"]["outcome"] == "interrupted"


def test_kill_9_mid_stage_then_up_converges(
    cluster: KwokCluster, silent_api: Path, tmp_path: Path
) -> None:
    victim = start_platform(
        "up", "--engine", "existing", "--kubeconfig", str(silent_api), log=tmp_path / "victim.log"
    )
    wait_for_stage_running("cluster")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "local")
    assert state.load()["stages"]["cluster"]["outcome"] == "running"  # what kill -9 leaves

    resumed = run_platform("up", "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    recorded = state.load()["stages"]
    assert all(r["outcome"] in ("done", "verified") for r in recorded.values())
    assert json.loads(state.state_file.read_text())  # still valid JSON


def test_noop_up_verifies_every_stage_without_redoing_it(cluster: KwokCluster) -> None:
    assert (
        run_platform(
            "up", "--engine", "existing", "--kubeconfig", str(cluster.kubeconfig)
        ).returncode
        == 0
    )
    started = time.monotonic()
    again = run_platform("up", "-o", "json")
    seconds = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    outcomes = {s["stage"]: s["outcome"] for s in json_events(again.stdout)[-1]["stages"]}
    assert set(outcomes.values()) == {"verified"}
    print(f"no-op platform up: {seconds:.2f}s")
