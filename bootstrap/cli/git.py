"""`platform git url|credentials|clone [DIR]`: the platform's GitOps repository by hand.

Thin: the URL comes from bootstrap.gitops.repo, the read-write login from the
`gitserver` stage (git.password_file, or the password it generated), the clone from
bootstrap.gitops.git_client. `credentials` prints the password only to stdout (text) or in the
JSON summary, never to the log; `clone` passes the login to git in its environment, so
the clone's .git/config holds the plain URL and no password.
"""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli.common import (
    CommonArgs,
    common_options,
    open_session,
    reported_errors,
    stage_context,
)


@click.group()
def git() -> None:
    """The platform's GitOps repository: its URL, credentials, a clone."""


@git.command()
@common_options
def url(common: CommonArgs) -> None:
    """Print the repository's URL as this machine reaches it (on a cluster reached through
    a port-forward: the kubectl command that opens one, and the URL then)."""
    session = open_session(common)
    from bootstrap.gitops.repo import people_repo_url

    with reported_errors(session):
        repo_url = people_repo_url(session.settings)
        if session.terminal.mode != "json":
            click.echo(repo_url)
        session.terminal.result({"ok": True, "url": repo_url})


@git.command()
@common_options
def credentials(common: CommonArgs) -> None:
    """Print the read-write git user and its password."""
    session = open_session(common)
    from bootstrap.gitops.repo import people_repo_url
    from bootstrap.stages.gitserver import git_login

    with reported_errors(session):
        login = git_login(session.settings, session.state)
        repo_url = people_repo_url(session.settings)
        if session.terminal.mode != "json":  # json carries them in the summary
            click.echo(f"url: {repo_url}")
            click.echo(f"username: {login.username}")
            click.echo(f"password: {login.password}")
        session.terminal.result(
            {"ok": True, "url": repo_url, "username": login.username, "password": login.password}
        )


@git.command()
@common_options
@click.argument(
    "directory", required=False, type=click.Path(file_okay=False, path_type=Path), default=None
)
def clone(common: CommonArgs, directory: Path | None) -> None:
    """Clone the repository into DIRECTORY (default ./gitops); no password is stored in it.

    To push, git asks for the user and password: see `platform git credentials`."""
    session = open_session(common)
    from bootstrap.forwards import git_through_port_forward
    from bootstrap.gitops.git_client import clone_for_person, set_origin
    from bootstrap.gitops.repo import laptop_repo_url, people_repo_url
    from bootstrap.stages.gitserver import git_login

    with reported_errors(session):
        target = directory or Path("gitops")
        # Through a port-forward when that is how this machine reaches the server: it
        # lasts as long as this command, so the clone's origin is set to the URL a
        # person's own `kubectl port-forward` gives (see `platform git url`).
        kube = stage_context(session, "git", quiet=True).kube
        repo_url = laptop_repo_url(session.settings, kube)
        sha = clone_for_person(repo_url, target, git_login(session.settings, session.state))
        if git_through_port_forward(session.settings):
            repo_url = people_repo_url(session.settings).split(" ", 1)[0]
            set_origin(target, repo_url)
            session.terminal.info(f"origin is {people_repo_url(session.settings)}")
        session.terminal.success(
            f"Cloned {repo_url} into {target} (at {sha[:12] or 'an empty repository'})."
        )
        session.terminal.info(
            "Push with `git push`; git asks for the login `platform git credentials` prints."
        )
        session.terminal.result(
            {"ok": True, "url": repo_url, "directory": str(target), "revision": sha}
        )
