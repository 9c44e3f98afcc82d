"""Build hook: ship the repository's top-level assets inside the `bootstrap` package.

terraform/ (Vault configuration) and gitops-template/ (the GitOps repository) live at
the top of the repository, where people look for them, but a wheel only carries
packages. `build_py` copies them to bootstrap/assets/ in the build, and
`bootstrap.assets.asset_dir()` finds them there (installed) or at the top (checkout).
Everything else about the build is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("terraform", "gitops-template")


class BuildWithAssets(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for name in ASSETS:
            source = root / name
            if source.is_dir():
                target = Path(self.build_lib) / "bootstrap" / "assets" / name
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(
                    source, target, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
                )


setup(cmdclass={"build_py": BuildWithAssets})
