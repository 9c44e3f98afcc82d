"""`platform doctor`: check this machine against what `platform up` needs, with fixes.

Exit code 1 when any failing check would block `up`.
"""

from __future__ import annotations

import click

from bootstrap.cli.common import (
    CommonArgs,
    common_options,
    engine_options,
    open_session,
    reported_errors,
)


@click.command()
@common_options
@engine_options
@click.option(
    "--install",
    is_flag=True,
    help="Download the missing pinned tools (k3d, OpenTofu) into ~/.platform/bin now.",
)
def doctor(
    common: CommonArgs,
    engine: str | None,
    kubeconfig: str | None,
    context: str | None,
    install: bool,
) -> None:
    """Check Docker, memory, disk, ports and tools (with --engine existing: the cluster,
    its version and your rights in it); print a fix for each problem.

    What `platform up` will do itself is shown as the plan ("will download k3d v5.9.0",
    "will build the component image"), not as a failure. `--install` (or answering yes on
    a terminal) downloads the missing tools now, verified; offline, it says which file to
    put where.
    """
    session = open_session(
        common,
        {"engine": engine, "kubeconfig": kubeconfig, "context": context},
    )
    from bootstrap.stages.preflight import (
        Finding,
        blocking_failures,
        check_existing_cluster,
        run_checks,
    )

    settings, state, terminal = session.settings, session.state, session.terminal
    with reported_errors(session):
        cluster_done = state.load()["stages"].get("cluster", {}).get("outcome") in (
            "done",
            "verified",
        )

        def all_checks() -> list[Finding]:
            findings = run_checks(settings, cluster_exists=cluster_done)
            if settings.engine == "existing":
                findings.extend(check_existing_cluster(settings, state))
            return findings

        findings = all_checks()
        from bootstrap.stages.tools import download_steps

        downloads = download_steps(settings)
        wants_install = bool(downloads) and (
            install
            or (
                terminal.mode == "live"
                and click.confirm(
                    "Download "
                    + " and ".join(s.tool.describe() for s in downloads if s.tool)
                    + " into ~/.platform/bin now?",
                    default=False,
                )
            )
        )
        if wants_install:
            from bootstrap.tools import install as install_tool

            for step in downloads:
                assert step.tool is not None
                path = install_tool(step.tool)
                terminal.success(f"Installed {step.tool.describe()} at {path} (SHA-256 verified).")
            findings = all_checks()
        rows = [
            [
                ("ok" if f.ok else "plan" if f.planned else ("FAIL" if f.blocking else "warn")),
                f.name,
                f.detail,
                "" if f.ok else f.fix,
            ]
            for f in findings
        ]
        terminal.table(
            ["", "check", "result", "fix"],
            rows,
            title=f"platform doctor ({settings.engine} engine)",
        )
        failed = blocking_failures(findings)
        terminal.result(
            {
                "ok": not failed,
                "checks": [
                    {
                        "name": f.name,
                        "ok": f.ok,
                        "blocking": f.blocking,
                        "planned": f.planned,
                        "detail": f.detail,
                        "fix": f.fix,
                    }
                    for f in findings
                ],
            }
        )
        if failed:
            terminal.failure(
                f"{len(failed)} check(s) would stop `platform up`",
                "apply the fixes above, then run `platform doctor` again",
            )
            raise SystemExit(1)
        terminal.success("This machine can run a platform.")
