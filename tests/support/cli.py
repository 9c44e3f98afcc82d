"""Run the real `platform` console script as a subprocess, the way users and CI do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import processes

PLATFORM = Path(sys.executable).parent / "platform"


def run_platform(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PLATFORM_TEST_RUN"] = processes.RUN_ID
    full_env.setdefault("NO_COLOR", "1")
    return subprocess.run(
        [PLATFORM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def start_platform(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return processes.start([PLATFORM, *args], log, env=env)


def json_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
