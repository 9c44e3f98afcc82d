"""A Kubernetes cluster whose pods really run: kwokctl's control plane plus a real kubelet.

The control plane is the same kwokctl binary runtime the other tests use (real etcd,
kube-apiserver, controller-manager, scheduler), with no fake nodes. Beside it, on this
machine: containerd (its own root, state and socket), a real kubelet and kube-proxy, and
a bridge CNI network. Inside it, what a k3s node has: CoreDNS with k3s's Corefile (it
imports `coredns-custom`), local-path as the default StorageClass and Traefik as the
default IngressClass. Images come from no registry (tests/support/realnode/images.py).

The recipe, and the four fixes this machine needs, are in shared/reference/realnode.md.
One real-node cluster runs per machine at a time (kube-proxy's rules and the kubelet's
ports are host-wide): `RealNodeCluster.up` takes a machine-wide lock, every port is pinned,
and a cluster a killed run left behind is taken down before a new one starts. `down`
leaves the host as `up` found it; `leftovers()` says what is still different.

Used by the `real_node` fixture (tests/conftest.py) and the real-node e2e tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bootstrap.images import OPENBAO_IMAGE
from stacks.manifests import fill
from tests.support import processes
from tests.support.kwok import KwokCluster
from tests.support.realnode import images
from tests.support.realnode.host import HostSnapshot, netns_names

HERE = Path(__file__).parent
# Fixed places: one real node per machine, so a later run can find and remove what a
# killed one left. Short paths: containerd's sockets must fit in 108 bytes.
ROOT = Path("/var/lib/platform-realnode")
RUN = Path("/run/platform-realnode")
LOCK = Path("/run/platform-realnode.lock")
# The host as it was before `up`, kept until `down` has put it back.
SNAPSHOT = Path("/run/platform-realnode.host.json")
BRIDGE = "prn0"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"
INGRESS_IP = "10.96.0.80"
HTTP_NODE_PORT = 30080
HTTPS_NODE_PORT = 30443
NODE_NAME = "realnode"
# The kwokctl cluster's name (fixed: one real node per machine; a later run finds and
# ends the control plane a killed run left by it).
CONTROL_PLANE = "realnode"
# The fixture's own iptables rules carry this comment, so teardown finds exactly them.
RULE_MARKER = "platform-realnode"
# Control-plane ports, pinned outside the NodePort range (kwokctl would otherwise take
# them from 32767 down, where kube-proxy's NodePorts live).
PORTS = {
    "kubeApiserverPort": 16443,
    "etcdPort": 12379,
    "etcdPeerPort": 12380,
    "kubeControllerManagerPort": 10357,
    "kubeSchedulerPort": 10359,
    "kwokControllerPort": 10347,
}

# What a real node needs beside the control plane's binaries (testenv builds them all).
REAL_NODE_BINARIES = (
    "kubelet",
    "kube-proxy",
    "coredns",
    "traefik",
    "local-path-provisioner",
    "bao",
)
# What real-node teardowns in this test run left on the host; the session's leak check
# (tests/conftest.py) fails the run on any.
real_node_leftovers: list[str] = []

PAUSE_IMAGE = "pause:realnode"
BUSYBOX_IMAGE = "busybox:realnode"
COREDNS_IMAGE = "coredns:realnode"
TRAEFIK_IMAGE = "traefik:realnode"
LOCAL_PATH_IMAGE = "local-path-provisioner:realnode"


def node_ip() -> str:
    """This machine's address on its default route (the node's InternalIP)."""
    result = subprocess.run(
        ["ip", "-4", "-o", "route", "get", "192.0.2.1"], capture_output=True, text=True, check=False
    )
    words = result.stdout.split()
    if "src" in words:
        return words[words.index("src") + 1]
    raise RuntimeError(f"cannot tell this machine's address: {result.stdout}{result.stderr}")


@dataclass
class RealNodeCluster:
    """The control plane (`control`), the node's host processes, and the addons."""

    workdir: Path
    binaries: dict[str, Path]
    control: KwokCluster = field(init=False)
    snapshot: HostSnapshot | None = None
    node_ip: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _lock: IO[str] | None = None

    def __post_init__(self) -> None:
        self.control = KwokCluster(
            name=CONTROL_PLANE,
            workdir=self.workdir / "control-plane",
            binaries=self.binaries,
            nodes=0,
            config=self.workdir / "kwokctl.yaml",
        )

    # ---- the public surface ------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.control.kubeconfig

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.control.kubectl(*args, stdin=stdin, check=check)

    @property
    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(RUN / "containerd.sock"), "--namespace", "k8s.io"]

    def up(self, component_image: str, docker_host: str) -> None:
        """Start everything; on any failure take down what was started, then re-raise."""
        self._take_lock()
        try:
            self._clear_previous_run()
            self.snapshot = HostSnapshot.take()
            self.snapshot.save(SNAPSHOT)
            self.node_ip = node_ip()
            self._step("host network", self._prepare_host)
            self._step("containerd", self._start_containerd)
            self._step("images", lambda: self._import_images(component_image, docker_host))
            self._step("control plane", self._start_control_plane)
            self._step("kubelet", self._start_kubelet)
            self._step("kube-proxy", self._start_kube_proxy)
            self._step("addons", self._install_addons)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop everything and put the host back as it was; idempotent."""
        try:
            self._drain_pods()
            for name in ("kube-proxy", "kubelet"):
                process = self._processes.pop(name, None)
                if process is not None:
                    processes.stop(process, grace=15)
            if "kube-proxy" in self.binaries:
                self._run_quietly([str(self.binaries["kube-proxy"]), "--cleanup"])
            with contextlib.suppress(Exception):
                self.control.delete()
            self._stop_containerd()
            if self.snapshot is not None:
                self.snapshot.restore((ROOT, RUN), BRIDGE, RULE_MARKER)
            shutil.rmtree(ROOT, ignore_errors=True)
            shutil.rmtree(RUN, ignore_errors=True)
            SNAPSHOT.unlink(missing_ok=True)
        finally:
            self._release_lock()

    def leftovers(self) -> list[str]:
        """What the node left on this machine after `down` (processes included)."""
        found = [f"process {pid} (containerd or a shim)" for pid in _node_processes()]
        found += [f"process {pid} (in a pod's cgroup)" for pid in sorted(_pod_processes())]
        if self.snapshot is not None:
            found += self.snapshot.leftovers((ROOT, RUN), BRIDGE, RULE_MARKER)
        found += [f"directory {d}" for d in (ROOT, RUN) if d.exists()]
        return found

    # ---- steps ---------------------------------------------------------------------------

    def _step(self, name: str, action: Callable[[], None]) -> None:
        started = time.monotonic()
        action()
        self.timings[name] = round(time.monotonic() - started, 2)

    def _take_lock(self) -> None:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        handle = open(LOCK, "w")  # noqa: SIM115 - held until down()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(
                "another real-node test cluster runs on this machine (one at a time: "
                f"kube-proxy's rules are host-wide); {LOCK} is locked"
            ) from None
        self._lock = handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _clear_previous_run(self) -> None:
        """A run killed with -9 leaves its containerd, shims and mounts: end them first."""
        for pid in _node_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _kill_pod_processes()
        if ROOT.exists() or RUN.exists() or SNAPSHOT.exists():
            earlier = HostSnapshot.load(SNAPSHOT) or HostSnapshot.take()
            earlier.restore((ROOT, RUN), BRIDGE, RULE_MARKER)
            shutil.rmtree(ROOT, ignore_errors=True)
            shutil.rmtree(RUN, ignore_errors=True)
            SNAPSHOT.unlink(missing_ok=True)

    def _prepare_host(self) -> None:
        (Path("/proc/sys/net/ipv4/ip_forward")).write_text("1\n")
        # A running dockerd sets the FORWARD policy to DROP; pod traffic crosses FORWARD
        # (bridged, with br_netfilter), so allow the pod network explicitly.
        for direction in ("-s", "-d"):
            self._iptables("-I", "FORWARD", direction, CLUSTER_CIDR, "-j", "ACCEPT")
        for directory in (ROOT, RUN, ROOT / "cni", ROOT / "ipam", ROOT / "storage"):
            directory.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "realnode",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(ROOT / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (ROOT / "cni" / "10-realnode.conflist").write_text(json.dumps(conflist, indent=2))

    def _iptables(self, *rule: str) -> None:
        subprocess.run(
            ["iptables", "-w", *rule, "-m", "comment", "--comment", RULE_MARKER],
            check=True,
            capture_output=True,
        )

    def _start_containerd(self) -> None:
        config = RUN / "containerd.toml"
        config.write_text(_template("containerd.toml", ROOT=ROOT, RUN=RUN, PAUSE=PAUSE_IMAGE))
        self._processes["containerd"] = processes.start(
            ["containerd", "--config", str(config)], self.workdir / "containerd.log"
        )
        processes.wait_for(
            lambda: self._run_quietly([*self.ctr, "version"]) == 0,
            timeout=30,
            what="containerd to answer",
        )

    def _import_images(self, component_image: str, docker_host: str) -> None:
        made = self.workdir / "images"
        pause = images.build_pause(made)
        busybox = Path("/bin/busybox")
        specs = [
            images.ImageSpec(PAUSE_IMAGE, (images.ImageFile("/pause", source=pause),), ("/pause",)),
            images.ImageSpec(BUSYBOX_IMAGE, images.busybox_files(busybox), ("/bin/sh",)),
            images.ImageSpec(
                COREDNS_IMAGE,
                (images.ImageFile("/coredns", source=self.binaries["coredns"]),),
                ("/coredns",),
            ),
            images.ImageSpec(
                TRAEFIK_IMAGE,
                (images.ImageFile("/usr/local/bin/traefik", source=self.binaries["traefik"]),),
                ("/usr/local/bin/traefik",),
            ),
            images.ImageSpec(
                LOCAL_PATH_IMAGE,
                (
                    images.ImageFile(
                        "/usr/bin/local-path-provisioner",
                        source=self.binaries["local-path-provisioner"],
                    ),
                ),
                ("/usr/bin/local-path-provisioner",),
                env={"PATH": "/usr/bin:/bin"},
            ),
            # The image the platform's manifests name (bootstrap/images.py), made from the
            # `bao` binary the other tests run: one OpenBao version everywhere.
            images.ImageSpec(
                OPENBAO_IMAGE,
                (images.ImageFile("/bin/bao", source=self.binaries["bao"]),),
                ("/bin/bao",),
                directories=("/tmp", "/openbao/data", "/openbao/config"),
                env={"PATH": "/bin", "HOME": "/tmp"},
            ),
        ]
        for spec in specs:
            archive = made / f"{spec.reference.replace('/', '_').replace(':', '_')}.tar"
            images.single_layer_archive(spec, archive)
            images.import_archive(self.ctr, archive, spec.reference)
        images.import_from_docker(self.ctr, component_image, docker_host)

    def _start_control_plane(self) -> None:
        pki = self.control.pki_dir
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {**PORTS, "kubeApiserverCertSANs": [API_SERVICE_IP, self.node_ip]},
            "componentsPatches": [
                {
                    "name": "kube-apiserver",
                    "extraArgs": [
                        {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                        {
                            "key": "kubelet-preferred-address-types",
                            "value": "InternalIP,Hostname",
                        },
                        {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
                        {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
                    ],
                },
                {
                    # kwok must leave the real node alone: it manages only nodes that
                    # carry its annotation (this cluster has none).
                    "name": "kwok-controller",
                    "extraArgs": [
                        {"key": "manage-all-nodes", "value": "false", "override": True},
                        {
                            "key": "manage-nodes-with-annotation-selector",
                            "value": "kwok.x-k8s.io/node=fake",
                            "override": True,
                        },
                    ],
                },
            ],
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "kwokctl.yaml").write_text(json.dumps(config, indent=2))
        self.control.create()

    def _start_kubelet(self) -> None:
        kubelet_dir = ROOT / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        config = kubelet_dir / "config.yaml"
        config.write_text(
            _template(
                "kubelet.yaml",
                RUN=RUN,
                ROOT=ROOT,
                CA=self.control.pki_dir / "ca.crt",
                DNS_IP=DNS_IP,
            )
        )
        self._processes["kubelet"] = processes.start(
            [
                self.binaries["kubelet"],
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={kubelet_dir}",
                f"--cert-dir={kubelet_dir / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.node_ip}",
                "--v=1",
            ],
            self.workdir / "kubelet.log",
        )
        processes.wait_for(self._node_ready, timeout=90, what="the real node to be Ready")

    def _node_ready(self) -> bool:
        node = json.loads(self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False) or "{}")
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _start_kube_proxy(self) -> None:
        config = RUN / "kube-proxy.yaml"
        config.write_text(
            _template(
                "kube-proxy.yaml",
                KUBECONFIG=self.kubeconfig,
                CLUSTER_CIDR=CLUSTER_CIDR,
                NODE_NAME=NODE_NAME,
                NODE_IP=self.node_ip,
            )
        )
        self._processes["kube-proxy"] = processes.start(
            [self.binaries["kube-proxy"], f"--config={config}", "--v=1"],
            self.workdir / "kube-proxy.log",
        )

    def _install_addons(self) -> None:
        values = {
            "NODE_IP": self.node_ip,
            "NODE_NAME": NODE_NAME,
            "DNS_IP": DNS_IP,
            "INGRESS_IP": INGRESS_IP,
            "HTTP_NODE_PORT": str(HTTP_NODE_PORT),
            "HTTPS_NODE_PORT": str(HTTPS_NODE_PORT),
            "COREDNS_IMAGE": COREDNS_IMAGE,
            "TRAEFIK_IMAGE": TRAEFIK_IMAGE,
            "LOCAL_PATH_IMAGE": LOCAL_PATH_IMAGE,
            "BUSYBOX_IMAGE": BUSYBOX_IMAGE,
            "STORAGE_DIR": str(ROOT / "storage"),
        }
        for addon in ("coredns", "local-path", "traefik"):
            path = HERE / "addons" / f"{addon}.yaml"
            text = fill(path.read_text(), values, str(path))
            self.kubectl("apply", "--server-side", "-f", "-", stdin=text)
        for namespace, deployment in (
            ("kube-system", "coredns"),
            ("local-path-storage", "local-path-provisioner"),
            ("kube-system", "traefik"),
        ):
            self.kubectl(
                "rollout", "status", "-n", namespace, f"deployment/{deployment}", "--timeout=120s"
            )
        # CoreDNS can be Ready a moment before kube-proxy routes its Service: wait until
        # a name resolves through the Service address, as pods will ask it.
        processes.wait_for(
            lambda: bool(resolve(DNS_IP, "kubernetes.default.svc.cluster.local")),
            timeout=60,
            what="cluster DNS to answer at its Service address",
        )

    # ---- teardown helpers -----------------------------------------------------------------

    def _drain_pods(self) -> None:
        """Delete every pod while the kubelet still runs, so it tears each sandbox down
        through CNI (killing containers directly would leak netns and veths)."""
        if "kubelet" not in self._processes:
            return
        self.kubectl("cordon", NODE_NAME, check=False)
        self.kubectl(
            "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false",
            check=False,
        )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            processes.wait_for(self._no_sandboxes, timeout=60, what="pod sandboxes to stop")

    def _no_sandboxes(self) -> bool:
        """No container runs and every pod network is torn down (the kubelet has run CNI
        DEL, which removes the network namespace last)."""
        result = subprocess.run(
            [*self.ctr, "tasks", "ls", "-q"], capture_output=True, text=True, check=False
        )
        before = self.snapshot.netns if self.snapshot is not None else set()
        networks = {n for n in netns_names() - before if n.startswith("cni-")}
        return result.returncode == 0 and not result.stdout.strip() and not networks

    def _stop_containerd(self) -> None:
        process = self._processes.pop("containerd", None)
        if process is not None:
            processes.stop(process, grace=15)
        # Shims outlive containerd by design; end those of this containerd's socket, and
        # any container a pod deletion did not stop.
        for pid in _node_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _kill_pod_processes()

    @staticmethod
    def _run_quietly(cmd: list[str]) -> int:
        return subprocess.run(cmd, capture_output=True, check=False, timeout=60).returncode


def _is_node_process(line: str) -> bool:
    """A process of the real-node cluster, told by its arguments: containerd, a shim of
    its socket, the kubelet, kube-proxy, or a control-plane component (kwokctl runs them
    from its cluster directory, named after the cluster)."""
    return str(RUN) in line or str(ROOT) in line or f"/clusters/{CONTROL_PLANE}/" in line


def _node_processes() -> list[int]:
    """The real-node cluster's processes, of this run or of a killed earlier one."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _is_node_process(cmdline):
            found.append(int(entry.name))
    return found


def _pod_processes() -> set[int]:
    """Every process in the kubelet's pod cgroups (containers carry no test-run marker)."""
    pids: set[int] = set()
    for procs in Path("/sys/fs/cgroup").glob("*/kubepods/**/cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def _kill_pod_processes() -> None:
    for pid in _pod_processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _template(name: str, **values: object) -> str:
    path = HERE / "templates" / name
    return fill(path.read_text(), {k: str(v) for k, v in values.items()}, str(path))


def resolve(server: str, name: str) -> list[str]:
    """A-record addresses for `name` asked of the DNS server at `server` (UDP, 2 s)."""
    import dns.exception
    import dns.message
    import dns.query

    query = dns.message.make_query(name, "A")
    try:
        answer = dns.query.udp(query, server, timeout=2)
    except (dns.exception.DNSException, OSError):
        return []
    return [item.address for rrset in answer.answer for item in rrset if hasattr(item, "address")]
