"""Every container image the platform uses, pinned in one place with its version.

Read by the k3d engine (node image), the manifest renderer (component and OpenBao
images), `platform images save` (the offline bundle) and preflight (which images are
missing locally). Change a version here and everything follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap import __version__

K3S_VERSION = "v1.34.4-k3s1"
K3S_IMAGE = f"rancher/k3s:{K3S_VERSION}"
OPENBAO_IMAGE = "quay.io/openbao/openbao:2.4.3"
COMPONENT_IMAGE = f"platform-components:{__version__}"


@dataclass(frozen=True)
class PinnedImage:
    reference: str
    purpose: str
    # Built on this machine (no registry has it); the rest can be pulled when online.
    local_build: bool = False


# What k3s itself needs at start (its airgap image list for K3S_VERSION).
K3S_SYSTEM_IMAGES: tuple[PinnedImage, ...] = (
    PinnedImage("rancher/mirrored-pause:3.6", "k3s pod sandbox"),
    PinnedImage("rancher/mirrored-coredns-coredns:1.12.3", "cluster DNS"),
    PinnedImage("rancher/local-path-provisioner:v0.0.32", "local-path storage"),
    PinnedImage("rancher/mirrored-library-traefik:3.3.6", "ingress controller"),
    PinnedImage("rancher/klipper-helm:v0.9.8-build20250709", "k3s helm controller"),
    PinnedImage("rancher/klipper-lb:v0.4.13", "service load balancer"),
    PinnedImage("rancher/mirrored-metrics-server:v0.8.0", "metrics"),
)

PLATFORM_IMAGES: tuple[PinnedImage, ...] = (
    PinnedImage(K3S_IMAGE, "k3s node"),
    PinnedImage(OPENBAO_IMAGE, "Vault (OpenBao)"),
    PinnedImage(COMPONENT_IMAGE, "in-house components", local_build=True),
)


def all_images() -> tuple[PinnedImage, ...]:
    return PLATFORM_IMAGES + K3S_SYSTEM_IMAGES
