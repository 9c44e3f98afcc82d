"""`platform apps`: the Applications of a platform, with sync, health, revision, message.

Also holds the options and the client factory that `platform sync` and `platform diff`
share (cluster selection: --kubeconfig, else the platform's own kubeconfig in its state
dir, else $KUBECONFIG). Heavy modules are imported inside the command bodies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bootstrap.cli.common import (
    CommonArgs,
    Session,
    common_options,
    kubeconfig_options,
    open_session,
    reported_errors,
)

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

F = TypeVar("F", bound=Callable[..., Any])


def cluster_options(func: F) -> F:
    """Which cluster (kubeconfig options) and which namespace of Applications."""
    namespace = click.option(
        "--namespace",
        "-n",
        "app_namespace",
        envvar="PLATFORM_APP_NAMESPACE",
        default=None,
        help="Namespace of the Applications [env PLATFORM_APP_NAMESPACE; default: all].",
    )
    return namespace(kubeconfig_options(func))


def kube_client(session: Session, kubeconfig: str | None, context: str | None) -> KubeClient:
    """The cluster the flags name, else the platform's own kubeconfig, else its settings'."""
    from stacks.kube.client import KubeClient

    kubeconfig = kubeconfig or os.environ.get("PLATFORM_KUBECONFIG") or None
    context = context or os.environ.get("PLATFORM_CONTEXT") or None
    if kubeconfig is None and session.state.kubeconfig.exists():
        kubeconfig = str(session.state.kubeconfig)
    if kubeconfig is None and session.settings.kubeconfig:
        kubeconfig = session.settings.kubeconfig
    from bootstrap.engines import kubeconfig as kubeconfig_file

    chosen = context or session.settings.context or None
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return kubeconfig_file.load(path, lambda: KubeClient.from_kubeconfig(kubeconfig, chosen))


@click.command()
@common_options
@cluster_options
def apps(
    common: CommonArgs,
    kubeconfig: str | None,
    context: str | None,
    app_namespace: str | None,
) -> None:
    """List Applications: NAME, SYNC, HEALTH, REVISION, MESSAGE."""
    session = open_session(common)
    with reported_errors(session):
        from stacks.reconciler.inspect import list_apps

        rows = list_apps(kube_client(session, kubeconfig, context), app_namespace)
        if not rows:
            session.terminal.info(
                "No Applications yet. The bootstrap's `reconciler` stage creates the root one."
            )
        show_ns = len({r.namespace for r in rows}) > 1
        show_hooks = any(r.hooks for r in rows)  # the last sync's hooks (issue 21)
        columns = (
            (["NAMESPACE"] if show_ns else [])
            + ["NAME", "SYNC", "HEALTH", "REVISION"]
            + (["HOOKS"] if show_hooks else [])
            + ["MESSAGE"]
        )
        table = [
            ([r.namespace] if show_ns else [])
            + [r.name, r.sync, r.health, r.revision]
            + ([r.hooks[:60]] if show_hooks else [])
            + [r.message[:100]]
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
