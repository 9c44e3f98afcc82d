"""`platform version`: the installed version, for bug reports and CI logs."""

from __future__ import annotations

import platform as python_platform

import click

from bootstrap import __version__


@click.command()
def version() -> None:
    """Print the version of platform and of Python."""
    click.echo(f"platform {__version__} (python {python_platform.python_version()})")
