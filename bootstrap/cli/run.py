"""`platform run COMPONENT [ARGS]`: run an in-house component as a foreground program.

The container image's entrypoint is `platform run <component>`, and the same command on
a laptop (`--kubeconfig ...`) runs the identical program against any cluster, the way
operator projects run controllers locally. Each component exposes
`main(argv: list[str]) -> int` in the module named below; its own flags follow the name.
"""

from __future__ import annotations

import importlib
import sys

import click

# component -> module with `main(argv) -> int`
COMPONENTS: dict[str, str] = {
    "gitserver": "stacks.gitserver.program",
    "reconciler": "stacks.reconciler.program",
    "secrets": "stacks.secrets.program",
    "certs": "stacks.certs.program",
    "dns": "stacks.dns.program",
    "unsealer": "stacks.vault.unsealer",
}


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("component", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(component: str | None, args: tuple[str, ...]) -> None:
    """Run an in-house component (gitserver, reconciler, secrets, certs, dns, unsealer).

    Options after COMPONENT belong to it: `platform run reconciler --help`.
    """
    if component in (None, "-h", "--help"):
        click.echo("Usage: platform run COMPONENT [ARGS]...\n\nComponents:")
        for name, module in sorted(COMPONENTS.items()):
            click.echo(f"  {name:<11} ({module})")
        return
    module_name = COMPONENTS.get(component)
    if module_name is None:
        raise click.UsageError(
            f"unknown component {component!r}; choose one of {', '.join(sorted(COMPONENTS))}."
        )
    program = importlib.import_module(module_name)
    sys.exit(program.main(list(args)))
