"""Every pinned version, in one place: the tools `platform up` downloads, the images it
runs, and the SHA-256 of each release file it may download.

Read by bootstrap/tools.py (downloads), bootstrap/images.py (image references),
bootstrap/docker/renderers.py (helm and kustomize for the component image),
`platform images list` (which shows them), testenv/catalog.py (the tests run the same
k3d, OpenTofu and OpenBao) and tests/unit/bootstrap/test_readme_versions.py (the README
states these versions; the test keeps it true). Change a version here and everything
follows, except the checksums, which must be changed with it.

The checksums are those of the official release files (k3d: its GitHub release; OpenTofu:
its tofu_<version>_SHA256SUMS). They were not computed here (this project's machines
cannot reach GitHub) but taken from two public pin lists that agree where both list a
file (k3d linux-amd64 and darwin-arm64); each entry says where it comes from. A platform
with no entry is not downloaded for: `platform` says so and names the file to install by
hand. Never add a checksum that was not read off a release.
"""

from __future__ import annotations

K3D_VERSION = "v5.9.0"
# OpenTofu 1.6.2, not a later 1.6.x: the newest release whose published checksums this
# project could read (see the module docstring).
TOFU_VERSION = "1.6.2"
K3S_VERSION = "v1.34.4-k3s1"
OPENBAO_VERSION = "2.7.2"
# The reconciler renders Helm charts and Kustomize directories with these (issue 18); the
# component image carries both and testenv builds the same versions from Go modules.
# Helm v4.3.0: the newest helm.sh/helm/v4 whose published release checksums could be read
# here (v4.3.2 is served by the module proxy, but no checksum of its release files could
# be read). Kustomize v5.8.2: the newest that builds with Go 1.26 (v5.8.3 needs Go 1.27).
HELM_VERSION = "v4.3.0"
KUSTOMIZE_VERSION = "v5.8.2"

# (os, arch) -> SHA-256 of the release file, os/arch as Go names them (linux, darwin; amd64,
# arm64). k3d: the bare binary k3d-<os>-<arch>; from a Bazel pin list of k3d v5.9.0 (all
# four) and a shell pin list (linux/amd64, darwin/arm64), which agree.
K3D_SHA256: dict[tuple[str, str], str] = {
    ("linux", "amd64"): "06d8f25bc3a971c4eb29e0ff08429b180402db0f4dec838c9eac427e296800a0",
    ("linux", "arm64"): "03cde5cf23e6e8e67de5a039ecf26e5b85aca82fba3e5d13dadf904cd218a250",
    ("darwin", "amd64"): "b4aabc37534f95b9c764e7823f2df923f50d57600837aa60a06266cce47db732",
    ("darwin", "arm64"): "fe106541d5d0a3f18debcd4d432a16f8c0ce3e6ddc06f8fbb6f696a122313e00",
}
# OpenTofu: the zip tofu_<version>_<os>_<arch>.zip; from Hermit's opentofu package
# (cashapp/hermit-packages), which lists no linux/arm64 file for 1.6.2: there,
# `platform` asks for tofu to be installed by hand.
TOFU_SHA256: dict[tuple[str, str], str] = {
    ("linux", "amd64"): "18277462e0ded513e47fb3e041911dfd14f4ad3721d53ee2f0c709fa810b8cf0",
    ("darwin", "amd64"): "6f4450884a6371f248786be2dd27da74b0530e12cd1dd5af2849959133b0635e",
    ("darwin", "arm64"): "2c3069e89f4a7c20b70d32618c8e9679cb71be49c91aa123d947e2156fed10db",
}
# Helm: the archive helm-<version>-linux-<arch>.tar.gz from get.helm.sh. amd64 from ten
# public pin lists (Dockerfiles, CI workflows, install scripts; some cite
# get.helm.sh/helm-v4.3.0-linux-amd64.tar.gz.sha256sum), arm64 from two (a Dockerfile and
# a provisioning script), which agree with each other. Never add a checksum that was not
# read off a release or such lists.
HELM_SHA256: dict[tuple[str, str], str] = {
    ("linux", "amd64"): "86584a54def73570558f66f5111cc53dfed56689637ae32c1201205d494f54fb",
    ("linux", "arm64"): "31c5794dd55c66a51e6b7d2e2ac7a114ae8b1de41ff1d9ba51748ac973b06a08",
}
# Kustomize: kustomize_<version>_linux_<arch>.tar.gz from its GitHub release; amd64 from
# four public pin lists (a shell installer, a TypeScript and a Python tool table, a
# Markdown version table), arm64 from the first two; they agree where they overlap.
KUSTOMIZE_SHA256: dict[tuple[str, str], str] = {
    ("linux", "amd64"): "06af0a202c2b831207d0173f9c9cdb1b30abceca0747cb3fbb72792d26055c95",
    ("linux", "arm64"): "0991957191951cb7dddd142403b5bb98a1fcd6378ba0079dddc1e2c309080a7f",
}
