"""`platform apps`: the Applications of a platform, with sync, health, revision, message.

Also holds the options and the client factory that `platform sync` and `platform diff`
share (cluster selection: --kubeconfig, else the platform's own kubeconfig in its state
dir, else $KUBECONFIG). Heavy modules are imported inside the command bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bootstrap.cli.common import Session, common_options, open_session, reported_errors

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

F = TypeVar("F", bound=Callable[..., Any])


def cluster_options(func: F) -> F:
    options = [
        click.option(
            "--kubeconfig",
            envvar="PLATFORM_KUBECONFIG",
            default=None,
            help="Kubeconfig of the cluster [env PLATFORM_KUBECONFIG; default: the platform's, then $KUBECONFIG].",
        ),
        click.option(
            "--context",
            envvar="PLATFORM_CONTEXT",
            default=None,
            help="Kubeconfig context [env PLATFORM_CONTEXT].",
        ),
        click.option(
            "--namespace",
            "-n",
            "app_namespace",
            envvar="PLATFORM_APP_NAMESPACE",
            default=None,
            help="Namespace of the Applications [env PLATFORM_APP_NAMESPACE; default: all].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def kube_client(session: Session, kubeconfig: str | None, context: str | None) -> KubeClient:
    from stacks.kube.client import KubeClient

    if kubeconfig is None and session.state.kubeconfig.exists():
        kubeconfig = str(session.state.kubeconfig)
    if kubeconfig is None and session.settings.kubeconfig:
        kubeconfig = session.settings.kubeconfig
    return KubeClient.from_kubeconfig(kubeconfig, context or session.settings.context or None)


@click.command()
@common_options
@cluster_options
def apps(
    name: str | None,
    config_file: Path | None,
    output: str | None,
    verbose: int,
    quiet: bool,
    debug: bool,
    kubeconfig: str | None,
    context: str | None,
    app_namespace: str | None,
) -> None:
    """List Applications: NAME, SYNC, HEALTH, REVISION, MESSAGE."""
    session = open_session(name, config_file, output, verbose, quiet, debug)
    with reported_errors(session):
        from stacks.reconciler.inspect import list_apps

        rows = list_apps(kube_client(session, kubeconfig, context), app_namespace)
        if not rows:
            session.terminal.info(
                "No Applications yet. The bootstrap's `reconciler` stage creates the root one."
            )
        show_ns = len({r.namespace for r in rows}) > 1
        columns = (["NAMESPACE"] if show_ns else []) + [
            "NAME",
            "SYNC",
            "HEALTH",
            "REVISION",
            "MESSAGE",
        ]
        table = [
            ([r.namespace] if show_ns else [])
            + [r.name, r.sync, r.health, r.revision, r.message[:100]]
            for r in rows
        ]
        if rows:
            session.terminal.table(columns, table)
        session.terminal.result(
            {
                "ok": all(r.ready == "True" for r in rows),
                "applications": [r.__dict__ for r in rows],
            }
        )
