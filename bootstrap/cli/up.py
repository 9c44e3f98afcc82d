"""`platform up`: create or resume a platform by running the stages in order.

Thin: builds the session, takes the platform's lock, hands the registry's stages to the
runner and prints the outcome. Resuming, verifying, retries and timeouts live in
bootstrap.stages.runner.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from bootstrap.cli.common import (
    EXIT_INTERRUPTED,
    CommonArgs,
    common_options,
    engine_options,
    log_to_file,
    open_session,
    reported_errors,
    sigterm_as_interrupt,
    stage_context,
)


@click.command()
@common_options
@engine_options
@click.option(
    "--domain",
    default=None,
    help="DNS domain for ingress hosts [env PLATFORM_DOMAIN; default: localdev.me].",
)
@click.option(
    "--from",
    "start_from",
    default=None,
    metavar="STAGE",
    help="Run from STAGE on, even stages already done.",
)
@click.option("--only", default=None, metavar="STAGE", help="Run only STAGE.")
@click.option(
    "--dry-run", is_flag=True, help="Print the plan and what would change; change nothing."
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds the whole run may take [env PLATFORM_TIMEOUT; default: 900].",
)
@click.option(
    "--stage-timeout",
    type=float,
    default=None,
    help="Seconds one stage may take [env PLATFORM_STAGE_TIMEOUT; default: 300].",
)
@click.option(
    "--merge-kubeconfig",
    is_flag=True,
    default=None,
    help="Also merge the cluster into ~/.kube/config (k3d).",
)
@click.option(
    "--images",
    "images_archive",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Offline bundle from `platform images save`: loaded before anything would pull (k3d).",
)
@click.option(
    "--base",
    default=None,
    metavar="IMAGE",
    help="Base image for building the component image when it is missing "
    "[env PLATFORM_IMAGE_BASE; default: python:3.11-slim-bookworm].",
)
@click.option(
    "--upgrade-template",
    is_flag=True,
    help="Re-render the template into the platform's repository as one new commit "
    "(history is kept; without it a seeded repository is never changed).",
)
@click.option(
    "--template",
    default=None,
    metavar="DIR|URL[#REF]",
    help="Seed the repository from this template (a directory, or a git URL with an "
    "optional #branch/tag/commit) instead of the built-in gitops-template/; saved with "
    "the platform [env PLATFORM_TEMPLATE].",
)
@click.option(
    "--package",
    "packages",
    multiple=True,
    metavar="DIR",
    help="Add DIR to the repository as apps/<DIR's name>/ with an Application (repeatable); "
    "saved with the platform and re-applied on every run [env PLATFORM_PACKAGES, "
    "':'-separated].",
)
def up(
    common: CommonArgs,
    engine: str | None,
    kubeconfig: str | None,
    context: str | None,
    domain: str | None,
    start_from: str | None,
    only: str | None,
    dry_run: bool,
    timeout: float | None,
    stage_timeout: float | None,
    merge_kubeconfig: bool | None,
    images_archive: Path | None,
    base: str | None,
    upgrade_template: bool,
    template: str | None,
    packages: tuple[str, ...],
) -> None:
    """Create a platform, or resume one from the first stage that is not done.

    What this machine lacks is fetched first: a missing k3d or OpenTofu is downloaded
    (verified) into ~/.platform/bin and a missing component image is built. Stages already
    done are verified cheaply, not redone, so a second `platform up` on a healthy platform
    takes seconds. Ctrl-C stops at once; run `platform up` again to resume.

    Your own content: --template seeds the repository from your template instead of
    gitops-template/; each --package DIR becomes apps/<name>/ with an Application, and
    is re-applied on every run (one commit when it changed). Both are saved with the
    platform.
    """
    flags = {
        "engine": engine,
        "kubeconfig": kubeconfig,
        "context": context,
        "domain": domain,
        "timeout": timeout,
        "stage_timeout": stage_timeout,
        "merge_kubeconfig": merge_kubeconfig,
        "image.base": base,
        "template": template,
        "packages": packages or None,  # none given: keep the saved ones
    }
    session = open_session(common, flags)
    sigterm_as_interrupt()
    from bootstrap.config import check_content, persistable
    from bootstrap.stages.registry import all_stages
    from bootstrap.stages.runner import Interrupted, Runner, select

    settings, state, terminal = session.settings, session.state, session.terminal
    stages = all_stages()
    runner = Runner(stages, events=terminal)
    with reported_errors(session):
        select(stages, start_from, only)  # a bad --from/--only is bad usage: said first
        check_content(settings)  # a missing template or package directory, too
    with reported_errors(session), state.lock("up"), log_to_file(session, "up") as log_path:
        context_ = stage_context(session, "up", dry_run=dry_run)
        if upgrade_template:
            from bootstrap.stages.seed import UPGRADE_FACT

            context_.facts[UPGRADE_FACT] = True
        if dry_run:
            rows = runner.plan(context_, start_from=start_from, only=only)
            terminal.table(
                ["stage", "action", "what would change"],
                [[stage, action, "\n".join(changes) or "-"] for stage, action, changes in rows],
                title=f"Plan for platform {settings.name!r} (dry run: nothing changed)",
            )
            terminal.result(
                {
                    "ok": True,
                    "dry_run": True,
                    "plan": [{"stage": s, "action": a, "changes": c} for s, a, c in rows],
                }
            )
            return
        if images_archive is not None:
            from bootstrap.docker.bundle import load_into_engine

            terminal.info(f"loading the image bundle {images_archive} (no registry needed)")
            terminal.info(load_into_engine(settings, state, images_archive))
        data = state.load()
        data["settings"] = {**data.get("settings", {}), **persistable(settings)}
        state.save(data)
        terminal.begin(
            f"platform up {settings.name!r} ({settings.engine})",
            [(s.name, s.description) for s in stages if only is None or s.name == only],
        )
        started = time.monotonic()
        try:
            report = runner.run(
                context_, start_from=start_from, only=only, deadline=started + settings.timeout
            )
        except Interrupted as error:
            terminal.end()
            terminal.failure(str(error), error.hint, str(log_path))
            sys.exit(EXIT_INTERRUPTED)
        finally:
            terminal.end()
        total = time.monotonic() - started
        if only is None:
            terminal.success(f"Platform {settings.name!r} is up ({total:.1f}s).")
        else:  # one stage says nothing about the others: do not claim the platform is up
            outcome = report.stages[0].outcome if report.stages else "done"
            terminal.success(
                f"Stage {only} of platform {settings.name!r}: {outcome} ({total:.1f}s). "
                f"`platform up --name {settings.name}` runs every stage."
            )
        outputs = state.outputs()
        for key, value in outputs.items():
            terminal.info(f"  {key}: {value}")
        terminal.result(
            {
                "ok": True,
                "name": settings.name,
                "only": only,
                "seconds": round(total, 3),
                "stages": [
                    {"stage": s.name, "outcome": s.outcome, "seconds": round(s.seconds, 3)}
                    for s in report.stages
                ],
                "outputs": outputs,
            }
        )
