"""`platform ui` in a real headless Chromium (Debian's chromium and chromium-driver through
selenium) against the e2e platform (tests/support/hostplatform.py: kwok, the project's
git server, a real OpenBao, the in-house components as host processes).

One `platform up`, then the pages as a person sees them: every component healthy on the
overview, each Application's status, a `git push` appearing as the new revision and
then Synced without a reload (timed), "Sync now", a bad commit's file:line message, the
repository, Vault and certificates; and, without a platform, the pages of one that does
not exist and of one that is down. A screenshot of each page goes to the test's tmp
directory (printed). In CI a missing chromium fails the run (never a skip).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bootstrap.state import PlatformState
from tests.e2e.conftest import HostPlatform
from tests.support import processes
from tests.support.browser import (
    APP_NS,
    Dashboard,
    body,
    chromium,
    live,
    row,
    shot,
    text_of,
    wait,
)
from tests.support.cli import json_events, run_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # new and empty, every run
    driver_log = tmp_path_factory.mktemp("chromedriver") / "log"
    with chromium(profile, driver_log) as chrome:
        yield chrome


@pytest.fixture
def dashboards(tmp_path: Path) -> Iterator[Callable[..., Dashboard]]:
    started: list[Dashboard] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Dashboard:
        started.append(Dashboard(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for dashboard in started:
        dashboard.stop()
        assert dashboard.process.returncode is not None


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """Make the page itself (not the window around it) `width` x `height`."""
    driver.set_window_size(width, height)
    extra = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(width + int(extra[0]), height + int(extra[1]))


def no_horizontal_overflow(driver: WebDriver) -> bool:
    return bool(
        driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
    )


# ---- without a platform ---------------------------------------------------------------


def test_ui_of_a_missing_and_of_a_down_platform(
    browser: WebDriver, dashboards: Callable[..., Dashboard], tmp_path: Path
) -> None:
    ghost = dashboards("--name", "ghost")
    assert "Platform 'ghost' does not exist" in ghost.output()
    browser.get(ghost.url)
    assert "Platform 'ghost' does not exist" in body(browser)
    assert "platform up --name ghost" in body(browser)
    assert browser.current_url == ghost.base + "/"  # the token left the address bar

    # A platform whose cluster is gone: state says the cluster stage ran; nothing answers.
    kubeconfig = tmp_path / "kubeconfig"
    server = f"https://127.0.0.1:{processes.free_port()}"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": server}}],
                "users": [{"name": "gone", "user": {"token": "x"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
                "current-context": "gone",
            }
        )
    )
    state = PlatformState(Path(os.environ["PLATFORM_HOME"]), "down")
    data = state.load()
    data["stages"] = {"cluster": {"outcome": "done", "seconds": 1.5}}
    state.save(data)
    down = dashboards(
        "--name",
        "down",
        env={"PLATFORM_ENGINE": "existing", "PLATFORM_KUBECONFIG": str(kubeconfig)},
    )
    assert "Platform 'down' is down: its cluster does not answer" in down.output()
    browser.get(down.url)
    for path in ("", "apps", "repo", "vault", "certs"):
        browser.get(f"{down.base}/{path}")
        assert "The platform is down" in body(browser), path
    shot(browser, tmp_path / "screenshots", "down")
    assert down.process.poll() is None, "the dashboard of a down platform must keep serving"


# ---- against a whole platform ---------------------------------------------------------


def push(
    host: HostPlatform,
    work: Path,
    message: str,
    edit: Callable[[Path], None],
    started: list[float] | None = None,
) -> str:
    """Commit `edit` to the platform's repository and push it; `started` gets the
    monotonic time the push began."""
    if not work.exists():
        host.git.git("clone", "-q", host.git.repo_url("gitops"), str(work))
    host.git.git("pull", "-q", cwd=work)
    edit(work)
    host.git.git("add", "-A", cwd=work)
    host.git.git(
        "-c", "user.name=e2e", "-c", "user.email=e2e@test", "commit", "-qm", message, cwd=work
    )
    if started is not None:
        started.append(time.monotonic())
    host.git.git("push", "-q", "origin", "HEAD", cwd=work)
    return str(host.git.git("rev-parse", "HEAD", cwd=work).stdout.strip())


def scale_demo(replicas: int) -> Callable[[Path], None]:
    def edit(work: Path) -> None:
        path = next(work.glob("apps/demo/*deployment*.yaml"))
        deployment = yaml.safe_load(path.read_text())
        deployment["spec"]["replicas"] = replicas
        path.write_text(yaml.safe_dump(deployment, sort_keys=False))

    return edit


def page_weight(driver: WebDriver) -> int:
    """Bytes transferred for the page and its assets (the Resource Timing API)."""
    return int(
        driver.execute_script(
            "var n = performance.getEntriesByType('navigation')[0];"
            "var total = n ? n.transferSize : 0;"
            "performance.getEntriesByType('resource').forEach(function (r) {"
            "  total += r.transferSize; });"
            "return total;"
        )
    )


def test_ui_against_the_platform(
    host_platform: HostPlatform,
    browser: WebDriver,
    dashboards: Callable[..., Dashboard],
    tmp_path: Path,
) -> None:
    up = run_platform("up", "-o", "json", timeout=900)
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
    apps = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    names = {a["name"] for a in apps}
    assert {"root", "reconciler", "secrets", "certs", "dns", "demo"} <= names
    shots = tmp_path / "screenshots"
    figures: dict[str, Any] = {}

    dashboard = dashboards()
    viewport(browser, 1280, 720)
    browser.get(dashboard.url)
    assert browser.current_url == dashboard.base + "/"  # the token became a cookie

    # Overview: every component Synced and Healthy, the stages, where things are.
    wait(browser, live, "the live event stream")
    text = body(browser)
    for name in names:
        assert "Synced" in row(browser, "components", name), name
        assert "Healthy" in row(browser, "components", name), name
    assert f"{len(names)}/{len(names)} ready" in text
    for stage in ("preflight", "cluster", "gitserver", "seed", "handoff"):
        assert stage in text
    assert "platform git credentials" in text and "platform vault credentials" in text
    assert host_platform.git.url.split("//")[1].split("/")[0] in text  # the git URL
    generated = json.loads(
        PlatformState(Path(os.environ["PLATFORM_HOME"]), "local").read_secret("terraform-vars.json")
        or "{}"
    )
    for secret in (
        host_platform.git.passwords.values(),
        [generated.get("userpass_password", "")],
    ):
        for value in secret:
            assert not value or value not in browser.page_source
    figures["overview page weight (bytes)"] = page_weight(browser)
    shot(browser, shots, "overview")
    viewport(browser, 480, 900)
    assert no_horizontal_overflow(browser), "the overview overflows a narrow window"
    shot(browser, shots, "overview-narrow")
    viewport(browser, 1280, 720)

    # Applications: each one's sync and health, as `platform apps` says.
    browser.get(dashboard.base + "/apps")
    wait(browser, live, "the live event stream")
    for app in apps:
        text = row(browser, "apps", app["name"])
        assert app["sync"] in text and app["health"] in text, (app, text)
    shot(browser, shots, "applications")

    # A push: the new revision, then Synced and Healthy, without a reload.
    browser.execute_script("window.__notReloaded = 42;")
    work = tmp_path / "work"
    pushed_at: list[float] = []
    sha = push(host_platform, work, "scale demo from the ui test", scale_demo(3), pushed_at)
    returned = time.monotonic()
    wait(
        browser,
        lambda d: sha[:7] in row(d, "apps", "demo") and "Synced" in row(d, "apps", "demo"),
        f"demo at {sha[:7]} and Synced",
    )
    synced = time.monotonic()
    wait(
        browser,
        lambda d: sha[:7] in row(d, "apps", "demo") and "Healthy" in row(d, "apps", "demo"),
        f"demo at {sha[:7]} and Healthy",
    )
    healthy = time.monotonic()
    assert browser.execute_script("return window.__notReloaded;") == 42, "the page reloaded"
    figures["git push started -> page shows the new revision Synced (s)"] = round(
        synced - pushed_at[0], 2
    )
    figures["git push returned -> page shows the new revision Synced (s)"] = round(
        synced - returned, 2
    )
    figures["git push started -> page shows it Healthy (rolled out) (s)"] = round(
        healthy - pushed_at[0], 2
    )
    browser.get(dashboard.base + "/")
    activity = text_of(browser, "#activity")
    assert f"demo: new revision {sha[:7]}" in activity, activity
    assert f"demo: Synced and Healthy at {sha[:7]}" in activity, activity
    lines = activity.splitlines()
    new_at = next(i for i, line in enumerate(lines) if f"new revision {sha[:7]}" in line)
    synced_at = next(i for i, line in enumerate(lines) if f"Healthy at {sha[:7]}" in line)
    assert synced_at < new_at, "newest first: Synced must come after the new revision"

    # One Application: its resource tree, conditions, events, diff; "Sync now".
    browser.get(f"{dashboard.base}/apps/{APP_NS}/demo")
    wait(browser, live, "the live event stream")
    text = body(browser)
    for kind in ("Deployment", "Service", "Ingress", "ExternalSecret"):
        assert kind in text, kind
    assert "Ready" in text and "Reconciling" in text
    # The tree's lower level: the demo Deployment's pods (kwok runs them), with health.
    pods = text_of(browser, "tr.child")
    assert "Pod" in pods and "demo-" in pods and "Healthy" in pods, pods
    wait(
        browser,
        lambda d: "a sync would change nothing" in text_of(d, "#diff"),
        "the diff to say the demo is in sync",
    )
    browser.find_element(By.ID, "sync-now").click()
    wait(browser, lambda d: "requested=" in d.current_url, "the sync request")
    requested = re.search(r"requested=([^&]+)", browser.current_url)
    assert requested
    token = requested[1].replace("%3A", ":")
    wait(
        browser,
        lambda d: text_of(d, "#handled") == token,
        "the reconciler to handle the sync requested from the page",
    )
    handled = host_platform.cluster.kubectl(
        "get", "application", "demo", "-n", APP_NS, "-o", "jsonpath={.status.lastHandledRefresh}"
    )
    assert handled.strip() == token
    shot(browser, shots, "application")

    # Repository: the push, and the Application it changed, applied.
    browser.get(dashboard.base + "/repo")
    text = body(browser)
    assert sha[:7] in text and "scale demo from the ui test" in text, text
    commit_row = next(
        r.text for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr") if sha[:7] in r.text
    )
    assert "demo applied" in commit_row, commit_row
    shot(browser, shots, "repository")

    # Vault and certificates.
    browser.get(dashboard.base + "/vault")
    assert "unsealed" in body(browser), body(browser)
    shot(browser, shots, "vault")
    browser.get(dashboard.base + "/certs")
    text = body(browser)
    assert "demo" in text and "Local CA" in text, text
    shot(browser, shots, "certificates")

    # A bad commit: the Application's row names the file and line, without a reload.
    browser.get(dashboard.base + "/apps")
    wait(browser, live, "the live event stream")
    browser.execute_script("window.__notReloaded = 43;")

    def broken(work: Path) -> None:
        (work / "apps" / "demo" / "60-broken.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n---\n"
            "apiVersion: v1\nmetadata:\n  name: no-kind\n"
        )

    push(host_platform, work, "a bad commit", broken)
    wait(
        browser,
        lambda d: re.search(r"60-broken\.yaml:\d+: ", row(d, "apps", "demo")),
        "the demo's file:line message",
    )
    assert browser.execute_script("return window.__notReloaded;") == 43
    print(f"\nbroken demo row: {row(browser, 'apps', 'demo')}")
    shot(browser, shots, "applications-broken")
    push(
        host_platform,
        work,
        "fix the bad commit",
        lambda w: (w / "apps/demo/60-broken.yaml").unlink(),
    )
    wait(
        browser,
        lambda d: "Synced" in row(d, "apps", "demo") and "broken" not in row(d, "apps", "demo"),
        "the demo to recover",
        timeout=60,
    )

    # The server's rules, on the real command.
    def status(path: str, headers: dict[str, str]) -> int:
        request = urllib.request.Request(dashboard.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert status("/", {}) == 403
    cookie = {"Cookie": f"platform_ui_{dashboard.port}={dashboard.token}"}
    assert status("/", cookie) == 200
    assert status("/", {**cookie, "Host": f"rebound.example:{dashboard.port}"}) == 403
    assert status("/no/such/page", cookie) == 404
    print(f"\nui figures: {figures}")
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
    assert figures["overview page weight (bytes)"] <= 300 * 1024
