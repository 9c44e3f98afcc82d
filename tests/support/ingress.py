"""Play the ingress controller's one visible duty: publish an address in Ingress status.

In k3s, traefik writes `status.loadBalancer.ingress` of every Ingress; until it does,
an Ingress is Progressing (Argo CD's rule, which the reconciler follows). The test
cluster has no ingress controller (kwok runs no pods), so this thread does what traefik
would, through the real API, the way kwok's controller plays the kubelet.
"""

from __future__ import annotations

import threading

from stacks.errors import PlatformError
from stacks.kube.client import KubeClient


class IngressStatusPublisher:
    def __init__(
        self, client: KubeClient, address: str = "127.0.0.1", interval: float = 0.5
    ) -> None:
        self.client = client
        self.address = address
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingress-status", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                ingresses = self.client.list_objects("networking.k8s.io/v1", "Ingress")
            except PlatformError:
                continue
            for ingress in ingresses:
                status = (ingress.get("status") or {}).get("loadBalancer") or {}
                if status.get("ingress"):
                    continue
                meta = ingress["metadata"]
                try:
                    self.client.merge_patch(
                        "networking.k8s.io/v1",
                        "Ingress",
                        meta["name"],
                        {"status": {"loadBalancer": {"ingress": [{"ip": self.address}]}}},
                        meta["namespace"],
                        subresource="/status",
                    )
                except PlatformError:
                    continue
