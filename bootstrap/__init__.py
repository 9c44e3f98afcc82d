"""The `platform` installer: the CLI and everything that runs on the user's machine.

Layering (checked by import-linter, see pyproject.toml):
`bootstrap.cli -> bootstrap.stages -> stacks.* -> stacks.kube`.
"""

__version__ = "0.1.0"
