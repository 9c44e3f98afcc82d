"""`platform config`: the effective settings and where each value came from."""

from __future__ import annotations

import click

from bootstrap.cli.common import CommonArgs, common_options, engine_options, open_session


@click.command()
@common_options
@engine_options
def config(
    common: CommonArgs,
    engine: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Show every setting, its value and its source.

    Sources, lowest first: defaults, settings saved with the platform, platform.yaml
    (or --config), PLATFORM_* environment variables, flags.
    """
    from bootstrap.config import FIELDS_BY_KEY, describe

    session = open_session(
        common,
        {"engine": engine, "kubeconfig": kubeconfig, "context": context},
    )
    rows = [
        [key, value, source, FIELDS_BY_KEY[key].env]
        for key, value, source in describe(session.settings)
    ]
    session.terminal.table(
        ["setting", "value", "source", "environment variable"],
        rows,
        title=f"Settings of platform {session.settings.name!r}",
    )
    session.terminal.result(
        {"settings": {r[0]: {"value": session.settings.value(r[0]), "source": r[2]} for r in rows}}
    )
