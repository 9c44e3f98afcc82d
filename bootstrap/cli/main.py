"""Entry point of the `platform` console script: the command group and its lazy loading.

Each command lives in its own module and is imported only when it runs (or when
`--help` lists it), so `platform --help` and `platform version` start without loading
kubernetes, docker, hvac or git: a test checks this with `python -X importtime`.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# command name -> (module, attribute, one-line help). The help is here so that
# `platform --help` lists every command without importing any of them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("bootstrap.cli.up", "up", "Create or resume a platform (staged, resumable)."),
    "down": ("bootstrap.cli.down", "down", "Remove a platform and what it installed."),
    "status": ("bootstrap.cli.status", "status", "Show stages, components and where things are."),
    "list": (
        "bootstrap.cli.listing",
        "list_platforms_command",
        "List every platform on this machine.",
    ),
    "doctor": ("bootstrap.cli.doctor", "doctor", "Check this machine can run a platform."),
    "config": ("bootstrap.cli.config", "config", "Show effective settings and their sources."),
    "run": ("bootstrap.cli.run", "run", "Run an in-house component (reconciler, gitserver, ...)."),
    "vault": ("bootstrap.cli.vault", "vault", "Vault: status, unseal, credentials, ui."),
    "git": ("bootstrap.cli.git", "git", "The GitOps repository: url, credentials, clone."),
    "tenant": ("bootstrap.cli.tenant", "tenant", "Workshop tenants: add, remove, list."),
    "hosts": (
        "bootstrap.cli.hosts",
        "hosts",
        "Print (or --write) the platform's names for /etc/hosts.",
    ),
    "trust": (
        "bootstrap.cli.trust",
        "trust",
        "Trust the platform's local CA (instructions, or --install).",
    ),
    "version": ("bootstrap.cli.version", "version", "Print the version of platform."),
    "apps": ("bootstrap.cli.apps", "apps", "List Applications: sync, health, revision, message."),
    "sync": ("bootstrap.cli.sync", "sync", "Sync an Application now and wait for the result."),
    "diff": ("bootstrap.cli.diff", "diff", "Show what syncing an Application would change."),
    "ui": ("bootstrap.cli.ui", "ui", "Serve a local dashboard of the platform (127.0.0.1)."),
    "image": (
        "bootstrap.cli.image",
        "image",
        "Build the component image (one for all components).",
    ),
    "images": (
        "bootstrap.cli.image",
        "images",
        "Pinned images: list them, save an offline bundle.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """A complete local GitOps platform with one command.

    \b
    Start:   platform up            (then `platform status`)
    Stop:    platform down
    Trouble: platform doctor
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="platform")
