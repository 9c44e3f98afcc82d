"""`platform status`: the stages as recorded, the cluster, the components delivered from
git (with the cause for any that is not ready), and where things are.

Exit code (for CI): 0 when every stage is done, the cluster answers and every component
is Synced and Healthy; 1 otherwise (no such platform, a stage failed or has not run yet,
the cluster does not answer, a component is not ready)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bootstrap.cli.common import (
    CommonArgs,
    common_options,
    open_session,
    reported_errors,
)

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient
    from stacks.reconciler.inspect import AppRow


@click.command()
@common_options
def status(
    common: CommonArgs,
) -> None:
    """Show each stage's outcome, the cluster's health and the platform's addresses."""
    session = open_session(common)
    from bootstrap.engines.choose import engine_for
    from bootstrap.stages.registry import all_stages

    settings, state, terminal = session.settings, session.state, session.terminal
    with reported_errors(session):
        if not state.exists():
            terminal.info(
                f"Platform {settings.name!r} does not exist. Create it with `platform up --name {settings.name}`."
            )
            terminal.result({"ok": False, "name": settings.name, "exists": False})
            raise SystemExit(1)
        data = state.load()
        recorded = data["stages"]
        rows = []
        for stage in all_stages():
            record = recorded.get(stage.name, {})
            outcome = record.get("outcome", "pending")
            seconds = record.get("seconds")
            detail = record.get("error") or record.get("summary") or ""
            rows.append(
                [
                    stage.name,
                    outcome,
                    f"{seconds:.1f}s" if isinstance(seconds, int | float) else "",
                    detail,
                ]
            )
        terminal.table(
            ["stage", "outcome", "time", "detail"],
            rows,
            title=f"Platform {settings.name!r} ({settings.engine})",
        )
        engine = engine_for(settings, state)  # one client for every read below
        cluster_ready, cluster_detail = (False, "not created yet")
        if recorded.get("cluster", {}).get("outcome") in ("done", "verified"):
            cluster_ready, cluster_detail = engine.is_ready()
        terminal.info(f"cluster: {cluster_detail}")
        client = engine.client() if cluster_ready else None
        components = _components(client) if client is not None else []
        problems = _problems(client, components) if client is not None else {}
        if components:
            terminal.table(
                ["application", "sync", "health", "message"],
                [[r.name, r.sync, r.health, r.message[:80]] for r in components],
                title="Components (Applications delivered from git)",
            )
        for problem in problems.values():
            terminal.info(f"not ready: {problem}")
        outputs = data.get("outputs", {})
        for key, value in outputs.items():
            terminal.info(f"{key}: {value}")
        healthy = (
            cluster_ready
            and all(
                recorded.get(s.name, {}).get("outcome") in ("done", "verified")
                for s in all_stages()
            )
            and all((r.sync, r.health) == ("Synced", "Healthy") for r in components)
        )
        terminal.result(
            {
                "ok": healthy,
                "name": settings.name,
                "exists": True,
                "engine": settings.engine,
                "stages": {r[0]: {"outcome": r[1], "detail": r[3]} for r in rows},
                "cluster": {"ready": cluster_ready, "detail": cluster_detail},
                "components": [
                    {**r.__dict__, "problem": problems.get(r.name, "")} for r in components
                ],
                "outputs": outputs,
            }
        )
        if not healthy:
            raise SystemExit(1)


def _components(client: KubeClient) -> list[AppRow]:
    """The platform's Applications and their health, once the reconciler is installed."""
    from stacks.errors import PlatformError
    from stacks.reconciler.inspect import list_apps

    try:
        return list_apps(client)
    except PlatformError:
        return []  # no reconciler (CRD) yet


def _problems(client: KubeClient, rows: list[AppRow]) -> dict[str, str]:
    """For each Application that is not Synced and Healthy, why not, down to the cause in
    the cluster (a pending claim, an unschedulable pod, ...), as `platform up` reports it."""
    from bootstrap.stages.appwait import app_problem, explained
    from stacks.errors import PlatformError
    from stacks.reconciler.api import API_VERSION, KIND

    problems = {}
    for row in rows:
        if (row.sync, row.health) == ("Synced", "Healthy"):
            continue
        try:
            app = client.get(API_VERSION, KIND, row.name, row.namespace)
            text = explained(client, app, app_problem(app, row.name))
        except PlatformError as error:
            text = f"Application {row.name} cannot be read: {error}"
        if text:  # it may have become ready since it was listed
            problems[row.name] = text
    return problems
