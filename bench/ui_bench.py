"""Benchmark `platform ui` with many Applications against a real API server (kwokctl).

    .venv/bin/python bench/ui_bench.py [--apps 50] [--tabs 5] [--updates 40]

`--apps` Applications (the real CRD, each status as the reconciler writes it, with six
resources) in a state dir whose stages are all done; `platform ui` (a real subprocess)
serves them. Measured: the overview's and the Applications page's weight (bytes on the
wire: headers, HTML, the stylesheet and the script) and time to answer; the latency from
a status PATCH (sent) to the event reaching each of `--tabs` open
event streams (one watch in the server, fanned out); the server's resident set size
(VmRSS) after start, with the tabs open after the updates, and after 200 more page loads.
The push-to-Synced time through a real push and reconciler is measured by
tests/e2e/test_ui.py (printed as "ui figures"). Results go in bench/README.md, section
"## Dashboard (`platform ui`)".
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bootstrap.stages.registry import stage_names  # noqa: E402
from bootstrap.state import PlatformState  # noqa: E402 - after the path is set
from stacks.kube.client import KubeClient  # noqa: E402
from stacks.reconciler.api import API_VERSION  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.kwok import created_cluster  # noqa: E402

PLATFORM = Path(sys.executable).parent / "platform"
NS = "platform-system"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def application(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Application",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "source": {"repoURL": "http://git.invalid/gitops.git", "path": f"apps/{name}"},
            "destination": {"namespace": name},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def status(revision: str, name: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resources = [
        {
            "group": group,
            "version": "v1",
            "kind": kind,
            "namespace": name,
            "name": f"{name}-{kind.lower()}",
            "status": "Synced",
            "health": {"status": "Healthy", "message": ""},
        }
        for group, kind in (
            ("", "ConfigMap"),
            ("", "Service"),
            ("apps", "Deployment"),
            ("networking.k8s.io", "Ingress"),
            ("", "ServiceAccount"),
            ("", "Secret"),
        )
    ]
    return {
        "status": {
            "observedGeneration": 1,
            "sync": {"status": "Synced", "revision": revision},
            "health": {"status": "Healthy", "message": "6 objects healthy"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Succeeded",
                    "message": f"applied revision {revision[:12]}: 6 objects healthy",
                    "lastTransitionTime": now,
                },
                {"type": "Reconciling", "status": "False", "reason": "Idle", "message": ""},
            ],
            "resources": resources,
            "lastAppliedRevision": revision,
        }
    }


class Tab(threading.Thread):
    """One open event stream, reading raw from the socket; records arrival times."""

    def __init__(self, port: int, cookie: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n".encode()
        )
        self.arrivals: dict[str, float] = {}

    def run(self) -> None:
        buffer = b""
        try:
            while chunk := self.sock.recv(65536):
                buffer += chunk
                # A row shows a revision's first 12 characters (as `platform apps`).
                for found in re.finditer(rb"[0-9a-f]{12}", buffer):
                    self.arrivals.setdefault(found[0].decode(), time.monotonic())
                buffer = buffer[-100:]
        except OSError:
            return


def all_arrived(tabs: list[Tab], revision: str) -> Callable[[], bool]:
    return lambda: all(revision[:12] in t.arrivals for t in tabs)


def fetch(url: str, cookie: str) -> tuple[int, float]:
    """(bytes on the wire, seconds) for one GET."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - local server
        body = answer.read()
        headers = str(answer.headers)
    return len(body) + len(headers) + 17, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--updates", type=int, default=40)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    cluster = created_cluster("ui", work / "kwok")
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    ui = None
    results: dict[str, Any] = {"apps": args.apps, "tabs": args.tabs}
    try:
        cluster.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "stacks/reconciler/manifests/10-crd.yaml")
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/applications.gitops.platform.local"
        )
        cluster.kubectl("create", "namespace", NS)
        names = [f"app-{i:03d}" for i in range(args.apps)]
        cluster.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=yaml.safe_dump_all([application(n) for n in names]),
        )
        for name in names:
            kube.merge_patch(
                API_VERSION,
                "Application",
                name,
                status(uuid.uuid4().hex + "0" * 8, name),
                NS,
                subresource="/status",
            )
        home = work / "home"
        state = PlatformState(home, "bench")
        state.save(
            {
                "name": "bench",
                "stages": {s: {"outcome": "done", "seconds": 1.0} for s in stage_names()},
                "outputs": {"git_url": "http://git.bench.test/gitops.git"},
            }
        )
        env = {
            "PLATFORM_HOME": str(home),
            "PLATFORM_ENGINE": "existing",
            "PLATFORM_KUBECONFIG": str(cluster.kubeconfig),
        }
        log = work / "ui.log"
        port = processes.free_port()
        started = time.monotonic()
        ui = processes.start(
            [PLATFORM, "ui", "--name", "bench", "--no-open", "--port", str(port)], log, env=env
        )
        processes.wait_for(lambda: "token=" in log.read_text(), 60, "the dashboard's address")
        token = re.search(r"token=(\S+)", log.read_text())
        assert token
        cookie = f"platform_ui_{port}={token[1]}"
        base = f"http://127.0.0.1:{port}"
        last = f"app-{args.apps - 1:03d}".encode()

        def all_listed() -> bool:
            request = urllib.request.Request(base + "/apps", headers={"Cookie": cookie})  # noqa: S310
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                return last in answer.read()

        processes.wait_for(all_listed, 60, "every Application on the page")
        results["start to every Application listed (s)"] = round(time.monotonic() - started, 2)
        results["rss after start (MiB)"] = round(rss_mib(ui.pid), 1)
        assets = sum(fetch(f"{base}/static/{a}", cookie)[0] for a in ("app.css", "app.js"))
        for path, label in (("/", "overview"), ("/apps", "applications")):
            sizes, times = zip(*(fetch(base + path, cookie) for _ in range(10)), strict=True)
            results[f"{label} page weight with assets (KB)"] = round((sizes[0] + assets) / 1024, 1)
            results[f"{label} answer median (ms)"] = round(statistics.median(times) * 1000, 1)

        tabs = [Tab(port, cookie) for _ in range(args.tabs)]
        for tab in tabs:
            tab.start()
        time.sleep(1.0)
        latencies: list[float] = []
        for i in range(args.updates):
            revision = uuid.uuid4().hex[:32] + f"{i:08d}"
            name = names[i % len(names)]
            sent = time.monotonic()  # the PATCH's round trip is part of what a person waits
            kube.merge_patch(
                API_VERSION, "Application", name, status(revision, name), NS, subresource="/status"
            )
            arrived = all_arrived(tabs, revision)
            processes.wait_for(arrived, 10, "the event in every tab")
            latencies.extend(t.arrivals[revision[:12]] - sent for t in tabs)
            time.sleep(0.05)
        results["status PATCH sent -> event in a tab, median (ms)"] = round(
            statistics.median(latencies) * 1000, 1
        )
        results["status PATCH sent -> event in a tab, max (ms)"] = round(max(latencies) * 1000, 1)
        results[f"rss with {args.tabs} tabs after {args.updates} updates (MiB)"] = round(
            rss_mib(ui.pid), 1
        )
        for _ in range(100):
            fetch(base + "/", cookie)
            fetch(base + "/apps", cookie)
        results["rss after 200 more page loads (MiB)"] = round(rss_mib(ui.pid), 1)
        for tab in tabs:
            tab.sock.close()
    finally:
        if ui is not None:
            processes.stop(ui)
        kube.close()
        cluster.delete()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
