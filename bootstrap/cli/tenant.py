"""`platform tenant add NAME | remove NAME | list`: workshop tenants.

Thin: bootstrap/tenants.py does the work (a repository on the platform's git server,
and one commit to the GitOps repository that the root Application delivers). `add`
prints the tenant's clone URL, user and password once, to stdout (or in the JSON
summary), never to the log: nothing keeps the password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bootstrap.cli.common import (
    CommonArgs,
    Session,
    common_options,
    open_session,
    reported_errors,
    stage_context,
)

if TYPE_CHECKING:
    from bootstrap.tenants import GitPlace


@click.group()
def tenant() -> None:
    """Workshop tenants: a namespace, a git repository and a login each."""


def _place(session: Session) -> GitPlace:
    from bootstrap.gitops.repo import cluster_repo_url, laptop_base_url, laptop_repo_url
    from bootstrap.stages.gitserver import git_login
    from bootstrap.tenants import GitPlace

    kube = stage_context(session, "tenant", quiet=True).kube
    return GitPlace(
        base_url=laptop_base_url(session.settings, kube),
        cluster_base_url=cluster_repo_url(session.settings).rsplit("/", 1)[0],
        gitops_url=laptop_repo_url(session.settings, kube),
        cluster=session.settings.name,
        login=git_login(session.settings, session.state),
    )


@tenant.command()
@common_options
@click.argument("tenant_name", metavar="NAME")
def add(common: CommonArgs, tenant_name: str) -> None:
    """Add tenant NAME: namespace NAME, repository tenants/NAME.git, its git login, its
    project and Application; print the login (once)."""
    session = open_session(common)
    from bootstrap import tenants

    with reported_errors(session):
        place = _place(session)
        name = tenant_name
        login = tenants.add(place, name)
        if session.terminal.mode != "json":
            click.echo(f"url: {login.clone_url}")
            click.echo(f"username: {login.username}")
            click.echo(f"password: {login.password}")
        session.terminal.success(
            f"Tenant {name} added: whatever its repository holds is applied to namespace "
            f"{name} seconds after each push. The password is shown only this once."
        )
        session.terminal.result(
            {
                "ok": True,
                "name": name,
                "url": login.clone_url,
                "username": login.username,
                "password": login.password,
            }
        )


@tenant.command()
@common_options
@click.argument("tenant_name", metavar="NAME")
def remove(common: CommonArgs, tenant_name: str) -> None:
    """Remove tenant NAME: its namespace (and all in it), repository, login and project."""
    session = open_session(common)
    from bootstrap import tenants

    with reported_errors(session):
        place = _place(session)
        name = tenant_name
        found = tenants.remove(place, name)
        if found:
            session.terminal.success(
                f"Tenant {name} removed (its namespace goes at the next sync)."
            )
        else:
            session.terminal.warn("tenant", f"There is no tenant {name}.")
        session.terminal.result({"ok": True, "name": name, "removed": found})


@tenant.command(name="list")
@common_options
def list_tenants(common: CommonArgs) -> None:
    """List the tenants the GitOps repository holds."""
    session = open_session(common)
    from bootstrap import tenants

    with reported_errors(session):
        place = _place(session)
        found = tenants.names(place)
        if session.terminal.mode != "json":
            for name in found:
                click.echo(name)
        session.terminal.result({"ok": True, "tenants": found})
