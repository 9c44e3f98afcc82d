"""`platform doctor`: check this machine against what `platform up` needs, with fixes.

Exit code 1 when any failing check would block `up`.
"""

from __future__ import annotations

from pathlib import Path

import click

from bootstrap.cli.common import common_options, engine_options, open_session, reported_errors


@click.command()
@common_options
@engine_options
def doctor(
    name: str | None,
    config_file: Path | None,
    output: str | None,
    verbose: int,
    quiet: bool,
    debug: bool,
    engine: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Check Docker, memory, disk, ports and tools; print a fix for each problem."""
    session = open_session(
        name,
        config_file,
        output,
        verbose,
        quiet,
        debug,
        {"engine": engine, "kubeconfig": kubeconfig, "context": context},
    )
    from bootstrap.stages.preflight import blocking_failures, run_checks

    settings, state, terminal = session.settings, session.state, session.terminal
    with reported_errors(session):
        cluster_done = state.load()["stages"].get("cluster", {}).get("outcome") in (
            "done",
            "verified",
        )
        findings = run_checks(settings, cluster_exists=cluster_done)
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
