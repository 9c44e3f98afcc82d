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
    "--install", is_flag=True, help="Install missing pinned tools (k3d) into ~/.platform/bin."
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

    When k3d is missing, `--install` (or answering yes on a terminal) installs the pinned
    version into ~/.platform/bin; offline, it says what to install by hand.
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
        k3d_missing = any(
            f.name == "k3d" and not f.ok and "not installed" in f.detail for f in findings
        )
        wants_install = install or (
            k3d_missing
            and terminal.mode == "live"
            and click.confirm(
                "k3d is missing. Install the pinned k3d into ~/.platform/bin?", default=False
            )
        )
        if k3d_missing and wants_install:
            from bootstrap.tools import K3D_VERSION, install_k3d

            path = install_k3d()
            terminal.success(f"Installed k3d {K3D_VERSION} at {path}.")
            findings = all_checks()
        rows = [
            [
                ("ok" if f.ok else ("FAIL" if f.blocking else "warn")),
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
