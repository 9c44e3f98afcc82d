"""Stage 1, `preflight`, and the checks behind `platform doctor`.

Each check returns a `Finding` with a fix for a person. What the `tools` stage will do
next (download a missing k3d or OpenTofu, build the component image) is a planned
finding, not a failure: `platform doctor` and `--dry-run` show it as the plan. For the
k3d engine, the pinned images (bootstrap/images.py) missing from Docker are named, with
whether their registry answers; an unreachable registry is a warning naming the offline
bundle (the cluster stage stops at the first image it cannot pull, with the same fix), so
that an offline first run still gets everything else ready. The stage fails fast on the
first run when any blocking finding fails, naming every problem at once, not one per
re-run. Which checks apply depends on the engine: an existing cluster needs no Docker and
no free host ports; whether it answers, is new enough and lets the kubeconfig's identity
install the platform is the `cluster` stage's first step, and `platform doctor` shows it
too (`check_existing_cluster`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bootstrap import hostcheck
from bootstrap.config import Settings
from bootstrap.engines.k3d import cluster_name, find_k3d
from bootstrap.images import DOCKER_HUB, PinnedImage
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.stages.tools import image_step, tofu_missing
from bootstrap.state import PlatformState
from bootstrap.tools import K3D, TOFU, tools_dir
from stacks.errors import PermanentError, PlatformError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

MIN_DOCKER_MEMORY = 3 * 1024**3
MIN_DOCKER_CPUS = 2
MIN_FREE_DISK = 3 * 1024**3
GiB = 1024**3
REGISTRY_TIMEOUT_SECONDS = 3.0
# The host a pull from each registry name contacts.
REGISTRY_ENDPOINTS = {DOCKER_HUB: "registry-1.docker.io"}


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True
    # Not a problem: something the `tools` stage will do ("will download k3d v5.9.0").
    planned: bool = False


def check_docker(settings: Settings) -> list[Finding]:
    from bootstrap.docker.host import docker_info

    try:
        info = docker_info()
    except PlatformError as error:
        return [Finding("docker", False, str(error), error.hint)]
    findings = [Finding("docker", True, f"Docker {info.server_version} ({info.operating_system})")]
    findings.append(
        Finding(
            "docker memory",
            info.memory_bytes >= MIN_DOCKER_MEMORY,
            f"{info.memory_bytes / GiB:.1f} GiB available to Docker (needs {MIN_DOCKER_MEMORY / GiB:.0f})",
            "give Docker more memory (Docker Desktop: Settings > Resources)",
        )
    )
    findings.append(
        Finding(
            "docker cpus",
            info.cpus >= MIN_DOCKER_CPUS,
            f"{info.cpus} CPUs available to Docker (needs {MIN_DOCKER_CPUS})",
            "give Docker more CPUs (Docker Desktop: Settings > Resources)",
            blocking=False,
        )
    )
    return findings


def registry_reachable(registry: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> bool:
    """Does the registry answer its API root? (any HTTP status counts, e.g. 401)"""
    host = REGISTRY_ENDPOINTS.get(registry, registry)
    try:
        with urllib.request.urlopen(f"https://{host}/v2/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def check_images(settings: Settings) -> list[Finding]:
    """Pinned images missing from Docker, and whether their registries can be reached."""
    from bootstrap.docker.bundle import image_report

    try:
        report = image_report()
    except PlatformError:
        return []  # check_docker already says Docker is unreachable
    findings = []
    built = [i for i in report.missing if i.local_build]
    step = image_step(settings)
    if step is not None:
        findings.append(
            Finding(
                "component image",
                False,
                f"will {step.text} ({step.reason})",
                "nothing to do: the `tools` stage builds it (or load a bundle with "
                "`platform up --images FILE`)",
                blocking=False,
                planned=True,
            )
        )
    elif built and settings.engine == "k3d":  # image.build is `no`
        findings.append(
            Finding(
                "component image",
                False,
                f"the component image {built[0].reference} is not in Docker and image.build is no",
                "build it with `platform image build`, or load a bundle with "
                "`platform up --images FILE`",
            )
        )
    if not [i for i in report.missing if not i.local_build]:
        present = len(report.present)
        return [*findings, Finding("images", True, f"{present} pinned images are local")]
    pullable = [i for i in report.missing if not i.local_build]
    registries = sorted({i.registry for i in pullable})
    with ThreadPoolExecutor(max_workers=max(1, len(registries))) as pool:
        reachable = dict(zip(registries, pool.map(registry_reachable, registries), strict=True))
    online: list[PinnedImage] = [i for i in pullable if reachable[i.registry]]
    offline: list[PinnedImage] = [i for i in pullable if not reachable[i.registry]]
    if online:
        findings.append(
            Finding(
                "images to pull",
                False,
                f"{len(online)} pinned images are not local and will be pulled from "
                + ", ".join(sorted({i.registry for i in online})),
                "nothing to do online; for offline use, `platform images save FILE` once they are here",
                blocking=False,
            )
        )
    if offline:
        names = ", ".join(i.reference for i in offline[:4]) + (
            f" and {len(offline) - 4} more" if len(offline) > 4 else ""
        )
        hosts = sorted({i.registry for i in offline})
        unreachable = ("registries " if len(hosts) > 1 else "registry ") + ", ".join(hosts)
        findings.append(
            Finding(
                "images offline",
                False,
                f"{len(offline)} pinned images are not local ({names}) and their {unreachable} "
                "cannot be reached",
                "offline: load the bundle with `platform up --images FILE` (made by `platform images "
                f"save FILE` on a connected machine); online: `docker pull {offline[0].reference}` "
                "(and the others: `platform images list`)",
                # Not blocking: the tools stage still gets what it can, and the cluster
                # stage stops at the first image it cannot pull, with the same fix.
                blocking=False,
            )
        )
    return findings


def check_ports(settings: Settings, cluster_exists: bool) -> list[Finding]:
    """Host ports the k3d load balancer and API need. Once our cluster runs, they are ours."""
    findings = []
    for label, port, setting in (
        ("API port", settings.k3d.api_port, "k3d.api_port"),
        ("HTTP port", settings.k3d.http_port, "k3d.http_port"),
        ("HTTPS port", settings.k3d.https_port, "k3d.https_port"),
    ):
        if cluster_exists or not hostcheck.port_in_use(port):
            findings.append(
                Finding(
                    f"port {port}",
                    True,
                    f"{label} {port} is free"
                    if not cluster_exists
                    else f"{label} {port} belongs to {cluster_name(settings)}",
                )
            )
            continue
        holder = hostcheck.port_holder(port)
        held_by = f"held by {holder}" if holder else "held by another process"
        findings.append(
            Finding(
                f"port {port}",
                False,
                f"{label} {port} is {held_by}",
                f"stop that process, or choose another port: --{setting.replace('.', '-').replace('_', '-')} / "
                f"PLATFORM_{setting.upper().replace('.', '_')}",
            )
        )
    return findings


def check_disk(settings: Settings) -> Finding:
    free = hostcheck.free_disk_bytes(settings.home)
    return Finding(
        "disk",
        free >= MIN_FREE_DISK,
        f"{free / GiB:.1f} GiB free under {settings.home}",
        f"free at least {MIN_FREE_DISK / GiB:.0f} GiB (docker system prune removes unused images)",
    )


def check_binaries(settings: Settings) -> list[Finding]:
    findings = []
    if settings.engine == "k3d":
        k3d = find_k3d()
        if k3d is None:
            findings.append(
                Finding(
                    "k3d",
                    False,
                    f"k3d is not installed: will download {K3D.describe()} into {tools_dir()}",
                    "nothing to do: the `tools` stage downloads and verifies it (`platform "
                    "doctor --install` does it now)",
                    blocking=False,
                    planned=True,
                )
            )
        else:
            _, version = hostcheck.binary_version(k3d, "version")
            supported = version.startswith("k3d version v5")
            findings.append(
                Finding(
                    "k3d",
                    supported,
                    f"{version or 'unknown version'} at {k3d}",
                    "install k3d v5 (https://k3d.io)",
                )
            )
    if tofu_missing(settings):
        findings.append(
            Finding(
                "tofu",
                False,
                f"neither tofu nor terraform is installed: will download OpenTofu {TOFU.version} "
                f"into {tools_dir()}",
                "nothing to do: the `tools` stage downloads and verifies it",
                blocking=False,
                planned=True,
            )
        )
    kubectl, kubectl_version = hostcheck.binary_version("kubectl", "version", "--client")
    findings.append(
        Finding(
            "kubectl",
            kubectl is not None,
            f"{kubectl_version} at {kubectl}" if kubectl else "kubectl is not installed",
            "install kubectl (https://kubernetes.io/docs/tasks/tools/) to inspect the cluster yourself",
            blocking=False,
        )
    )
    return findings


def check_existing_cluster(settings: Settings, state: PlatformState) -> list[Finding]:
    """The existing engine's cluster: does it answer, is it new enough, may we install?
    The same checks as the `cluster` stage's (bootstrap/engines/existing.py), as findings
    for `platform doctor`."""
    from bootstrap.engines.existing import (
        ExistingEngine,
        missing_rights,
        required_rights,
        rights_error,
        supported_version,
    )

    engine = ExistingEngine(settings, state)
    try:
        client = engine.client()
    except PlatformError as error:
        return [Finding("cluster", False, str(error), error.hint)]
    try:
        version = supported_version(client)
        findings = [Finding("cluster", True, f"Kubernetes {version} at {client.host}")]
        rights = required_rights(settings)
        missing = missing_rights(client, rights)
        findings.append(_storage_finding(client))
    except PlatformError as error:
        return [Finding("cluster", False, str(error), error.hint)]
    finally:
        client.close()
    if missing:
        refusal = rights_error(missing)
        findings.append(Finding("permissions", False, str(refusal), refusal.hint))
    else:
        findings.append(Finding("permissions", True, f"may {', '.join(str(r) for r in rights)}"))
    return findings


def _storage_finding(client: KubeClient) -> Finding:
    """A warning when claims that name no class (the platform's) would wait for volumes."""
    from stacks.kube.diagnose import has_default_storage_class

    fix = (
        "install a volume provisioner (e.g. rancher/local-path-provisioner) and mark its "
        "class default, or create PersistentVolumes for the claims in platform-git and "
        "platform-vault"
    )
    try:
        storage = has_default_storage_class(client)
    except PlatformError as error:
        return Finding("storage", False, f"cannot list StorageClasses: {error}", fix, False)
    if storage:
        return Finding("storage", True, "the cluster has a default StorageClass")
    detail = (
        "the cluster has no default StorageClass, so the git server's and Vault's volumes "
        "will wait for PersistentVolumes made by hand"
    )
    return Finding("storage", False, detail, fix, blocking=False)


def run_checks(settings: Settings, cluster_exists: bool = False) -> list[Finding]:
    """The preflight stage's checks. An existing cluster is checked by the `cluster` stage
    right after (`platform doctor` adds `check_existing_cluster`)."""
    findings: list[Finding] = []
    findings.extend(check_binaries(settings))
    if settings.engine == "k3d":
        findings.extend(check_docker(settings))
        findings.extend(check_ports(settings, cluster_exists))
        if not cluster_exists:
            findings.extend(check_images(settings))
    else:
        step = image_step(settings)  # only with image.build: yes
        if step is not None:
            findings.append(
                Finding(
                    "component image",
                    False,
                    f"will {step.text} ({step.reason})",
                    "nothing to do: the `tools` stage builds it",
                    blocking=False,
                    planned=True,
                )
            )
    findings.append(check_disk(settings))
    return findings


def blocking_failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.blocking and not f.ok]


class PreflightStage:
    name = "preflight"
    description = "check Docker, ports, disk and tools"
    requires: tuple[str, ...] = ()

    def timeout(self, ctx: StageContext) -> float:
        return 60.0

    def _cluster_exists(self, ctx: StageContext) -> bool:
        cluster = ctx.state.load()["stages"].get("cluster", {})
        return bool(cluster.get("outcome") in ("done", "verified"))

    def check(self, ctx: StageContext) -> CheckResult:
        # Passed once; later runs rely on the cluster stage's own checks. Cheap on purpose.
        return CheckResult(True, "passed earlier")

    def plan(self, ctx: StageContext) -> list[str]:
        return [
            "check "
            + ", ".join(f.name for f in run_checks(ctx.settings, self._cluster_exists(ctx)))
        ]

    def run(self, ctx: StageContext) -> str:
        ctx.progress.step(self.name, "checking this machine")
        findings = run_checks(ctx.settings, self._cluster_exists(ctx))
        for finding in findings:
            ctx.log.info(
                "preflight %s: %s (%s)",
                finding.name,
                "ok" if finding.ok else "FAILED",
                finding.detail,
            )
            if finding.planned:
                ctx.progress.note(self.name, finding.detail)
            elif not finding.ok and not finding.blocking:
                ctx.progress.warn(self.name, f"{finding.detail}: {finding.fix}")
        failed = blocking_failures(findings)
        if failed:
            raise PermanentError(
                "; ".join(f.detail for f in failed),
                hint="; ".join(f.fix for f in failed) + " (then run `platform up` again)",
            )
        return f"{len(findings)} checks passed"
