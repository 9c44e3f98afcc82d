"""Every container image the platform uses, pinned in one place with its version.

The versions themselves are in bootstrap/pins.py (with the tools' versions). Read by
the k3d engine (node image, and k3d's own helper images through the
K3D_IMAGE_* environment), the manifest renderer (component and OpenBao images),
`platform images save` (the offline bundle), `platform up --images` and preflight (which
images are missing locally, whether their registry answers). Change a version here and
everything follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap import __version__

# Re-exported: code that names an image's version imports it from here or from pins.
from bootstrap.pins import K3D_VERSION as K3D_VERSION
from bootstrap.pins import K3S_VERSION as K3S_VERSION
from bootstrap.pins import OPENBAO_VERSION as OPENBAO_VERSION

K3S_IMAGE = f"rancher/k3s:{K3S_VERSION}"
# The tests run this same version (testenv reads it from bootstrap/pins.py), and the
# real-node tests run the image made from that binary.
OPENBAO_IMAGE = f"quay.io/openbao/openbao:{OPENBAO_VERSION}"
COMPONENT_IMAGE = f"platform-components:{__version__}"
# The official slim image the Dockerfile builds on by default (ARG BASE).
COMPONENT_BASE_IMAGE = "python:3.11-slim-bookworm"

# k3d's helper images: the load balancer in front of the servers (ports 80/443/6443) and
# the tools container. k3d reads these variables, so the engine pins them for every call.
K3D_PROXY_IMAGE = f"ghcr.io/k3d-io/k3d-proxy:{K3D_VERSION.lstrip('v')}"
K3D_TOOLS_IMAGE = f"ghcr.io/k3d-io/k3d-tools:{K3D_VERSION.lstrip('v')}"
K3D_IMAGE_ENV = {"K3D_IMAGE_LOADBALANCER": K3D_PROXY_IMAGE, "K3D_IMAGE_TOOLS": K3D_TOOLS_IMAGE}

# Where k3s imports image archives from at start, before it would pull anything.
K3S_AIRGAP_DIR = "/var/lib/rancher/k3s/agent/images"

DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class PinnedImage:
    reference: str
    purpose: str
    # Built on this machine (no registry has it); the rest can be pulled when online.
    local_build: bool = False
    # Runs in the Docker engine (k3d's nodes and helpers), not inside k3s's containerd.
    host: bool = False

    @property
    def registry(self) -> str:
        """The registry host a pull would contact (docker.io for short names)."""
        first, _, rest = self.reference.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return DOCKER_HUB

    def how_to_get(self) -> str:
        """One command that makes this image local."""
        if self.local_build:
            return "platform image build"
        return f"docker pull {self.reference}"


# What k3s itself needs at start (its airgap image list for K3S_VERSION). metrics-server
# is left out: the k3d config disables it.
K3S_SYSTEM_IMAGES: tuple[PinnedImage, ...] = (
    PinnedImage("rancher/mirrored-pause:3.6", "k3s pod sandbox"),
    PinnedImage("rancher/mirrored-coredns-coredns:1.12.3", "cluster DNS"),
    PinnedImage("rancher/local-path-provisioner:v0.0.32", "local-path storage"),
    PinnedImage("rancher/mirrored-library-traefik:3.3.6", "ingress controller"),
    PinnedImage("rancher/klipper-helm:v0.9.8-build20250709", "k3s helm controller"),
    PinnedImage("rancher/klipper-lb:v0.4.13", "service load balancer"),
)

PLATFORM_IMAGES: tuple[PinnedImage, ...] = (
    PinnedImage(K3S_IMAGE, "k3s node", host=True),
    PinnedImage(K3D_PROXY_IMAGE, "k3d load balancer", host=True),
    PinnedImage(K3D_TOOLS_IMAGE, "k3d tools", host=True),
    PinnedImage(OPENBAO_IMAGE, "Vault (OpenBao)"),
    PinnedImage(COMPONENT_IMAGE, "in-house components", local_build=True),
)


def all_images() -> tuple[PinnedImage, ...]:
    return PLATFORM_IMAGES + K3S_SYSTEM_IMAGES


def pinned(reference: str) -> PinnedImage | None:
    """The pinned image with this reference, if any."""
    return next((image for image in all_images() if image.reference == reference), None)


def normalise(reference: str) -> str:
    """The short form Docker lists for a reference (docker.io/library/x:1 -> x:1)."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            return reference[len(prefix) :]
    return reference
