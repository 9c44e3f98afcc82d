"""Charts for the Helm tests and bench (issue 18): written as files, packaged with the
real `helm package`, indexed with `helm repo index` and served over HTTP on 127.0.0.1
by a Python http.server thread, or pushed to a real OCI registry (`crane registry serve`).
"""

from __future__ import annotations

import base64
import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}-web}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-web}
    spec:
      containers:
        - name: app
          image: "registry.example/app:{{ .Chart.AppVersion }}"
      tolerations:
        - {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
"""

SETTINGS = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  color: {{ .Values.color | quote }}
"""


def configmap_template(suffix: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {{{{ .Release.Name }}}}-{suffix}\ndata:\n  from: {suffix}\n"
    )


def write_chart(
    directory: Path,
    name: str,
    version: str,
    templates: dict[str, str],
    values: str = "greeting: hello\ncolor: red\nreplicas: 1\n",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: '{version}'\n"
    )
    (directory / "values.yaml").write_text(values)
    (directory / "templates").mkdir(exist_ok=True)
    for file, text in templates.items():
        (directory / "templates" / file).write_text(text)
    return directory


def package(helm: Path, chart: Path, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(helm), "package", str(chart), "--destination", str(destination)],
        check=True,
        capture_output=True,
    )
    found = sorted(destination.glob("*.tgz"), key=lambda p: p.stat().st_mtime)
    return found[-1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


class _Guarded(_Quiet):
    """Answers 401 unless the request carries the expected Basic credentials."""

    expected = ""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.end_headers()
            return
        super().do_GET()


@contextmanager
def chart_repository(
    helm: Path, directory: Path, credentials: tuple[str, str] | None = None
) -> Iterator[str]:
    """Serve `directory` (chart archives) as a chart repository, behind Basic auth when
    `credentials` are given; yields its URL (index written on entry)."""
    directory.mkdir(parents=True, exist_ok=True)
    base: type[_Quiet] = _Quiet
    if credentials is not None:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        base = type("Guarded", (_Guarded,), {"expected": f"Basic {token}"})
    handler = functools.partial(base, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        index(helm, directory, url)
        yield url
    finally:
        server.shutdown()
        server.server_close()


def index(helm: Path, directory: Path, url: str) -> None:
    subprocess.run(
        [str(helm), "repo", "index", str(directory), "--url", url],
        check=True,
        capture_output=True,
    )
