"""Where the repository's top-level assets are: terraform/ and gitops-template/.

An installed wheel carries them in bootstrap/assets/ (setup.py copies them at build
time); a source checkout or an editable install has them at the repository's top.
Called by the terraform stage (and the GitOps repository renderer).
"""

from __future__ import annotations

from pathlib import Path

from stacks.errors import PermanentError

PACKAGED = Path(__file__).resolve().parent / "assets"
CHECKOUT = Path(__file__).resolve().parents[1]


def asset_dir(*parts: str) -> Path:
    """The directory terraform/vault (etc.) from the package, else from the checkout."""
    for root in (PACKAGED, CHECKOUT):
        candidate = root.joinpath(*parts)
        if candidate.is_dir():
            return candidate
    raise PermanentError(
        f"{'/'.join(parts)} is missing from this installation of platform",
        hint="reinstall platform (`pip install .` in the repository) so its assets are included",
    )
