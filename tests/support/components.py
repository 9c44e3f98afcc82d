"""The one launcher of the in-house components for tests: `platform run <component>`.

    component = launch("certs", ["--kubeconfig", path, ...], tmp_path / "certs.log")
    component.metrics()["platform_certs_issued_total"]
    component.wait_metric("platform_secrets_syncs_total", above=n)   # work happened
    component.stop()                                                 # SIGTERM; exit code

Every component serves /healthz, /readyz and /metrics through the shared program shell
(stacks/program.py); `launch` gives it a free local port with `--listen` and, unless told
not to, waits until /readyz answers 200 (for a controller: its caches have listed), so a
test starts with a component that is really working. Output goes to the log file, which
`output()` reads for assertions and failure messages.

Used by the integration tests of secrets, certs, dns and vault (the unsealer), and by
tests/support/gitserver.py, whose `GitServer` adds the git server's users, repositories
and git client around the process this starts (on a port it may choose beforehand, so
a restart keeps the URL).
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import processes
from tests.support.cli import PLATFORM


@dataclass
class Component:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        """True once /readyz answers 200; raises if the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited {self.process.returncode}:\n{self.output()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> dict[str, float]:
        """The /metrics samples without labels, by name."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=2) as answer:
            text = answer.read().decode()
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def wait_metric(self, name: str, above: float, timeout: float = 30) -> float:
        """Until the counter `name` exceeds `above`: proof that the component did that
        much work, after which "nothing changed" is a finding and not a race."""
        processes.wait_for(
            lambda: self.metrics().get(name, 0.0) > above,
            timeout,
            f"{name} > {above} (last: {self.metrics().get(name)})",
        )
        return self.metrics()[name]

    def stop(self) -> int:
        """SIGTERM (then SIGKILL); the exit code."""
        processes.stop(self.process)
        return int(self.process.returncode)


def launch(
    component: str,
    args: Sequence[str],
    log: Path,
    wait_ready: bool = True,
    timeout: float = 30,
    port: int = 0,
    env: Mapping[str, str] | None = None,
) -> Component:
    """Start `platform run <component> --listen=127.0.0.1:<port> <args>` (port 0: a free
    one), with `env` added to the environment."""
    port = port or processes.free_port()
    process = processes.start(
        [str(PLATFORM), "run", component, f"--listen=127.0.0.1:{port}", *args], log, env=env
    )
    running = Component(component, process, port, log)
    if wait_ready:
        processes.wait_for(running.ready, timeout=timeout, what=f"the {component}'s /readyz")
    return running
