"""What the pages say, without a cluster: status as icon and word, the activity log's
words for a push, and a platform that does not exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap.config import load_settings
from bootstrap.engines.choose import engine_for
from bootstrap.state import PlatformState
from bootstrap.ui import pages
from bootstrap.ui.live import AppState, transitions
from bootstrap.ui.readers import Platform, _in_path
from bootstrap.ui.server import Request
from bootstrap.ui.site import Site


def app(revision: str, sync: str, health: str, reconciling: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "platform-system", "name": "demo"},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health, "message": ""},
            "conditions": [
                {"type": "Reconciling", "status": "True" if reconciling else "False"},
                {"type": "Ready", "status": "True", "message": "ok"},
            ],
        },
    }


def test_status_is_never_colour_alone() -> None:
    for word in ("Synced", "OutOfSync", "Healthy", "Degraded", "Progressing", "Missing", "odd"):
        html = pages.badge(word)
        assert word in html
        icon = html.split('aria-hidden="true">')[1].split("<")[0]
        assert icon.strip(), word
    assert "&lt;script&gt;" in pages.badge("<script>")


def test_a_push_reads_new_revision_then_syncing_then_synced() -> None:
    before = AppState.of(app("a" * 40, "Synced", "Healthy"))
    pushed = AppState.of(app("b" * 40, "Synced", "Progressing"))
    done = AppState.of(app("b" * 40, "Synced", "Healthy"))
    lines = transitions(before, pushed) + transitions(pushed, done)
    assert lines[0] == "demo: new revision bbbbbbb (was aaaaaaa)"
    assert lines[1].startswith("demo: syncing: Synced/Progressing")
    assert lines[2] == "demo: Synced and Healthy at bbbbbbb"
    assert transitions(done, done) == []


def test_which_files_belong_to_an_application() -> None:
    assert _in_path("apps/demo/deployment.yaml", "apps/demo", recurse=False)
    assert not _in_path("apps/demo/sub/x.yaml", "apps/demo", recurse=False)
    assert _in_path("apps/demo/sub/x.yaml", "apps/demo", recurse=True)
    assert not _in_path("apps/demo2/x.yaml", "apps/demo", recurse=True)
    assert _in_path("x.yaml", ".", recurse=False)


def test_a_platform_that_does_not_exist_says_so(tmp_path: Path) -> None:
    settings = load_settings(flags={"name": "ghost"})
    state = PlatformState(tmp_path, "ghost")
    site = Site(Platform(settings, state, engine_for(settings, state), tmp_path / "cache"))
    for path in ("/", "/apps", "/repo", "/vault", "/certs"):
        response = site.handle(Request("GET", path, {}), "csrf")
        assert response is not None and response.status == 200
        assert b"Platform &#x27;ghost&#x27; does not exist" in response.body
        assert b"platform up --name ghost" in response.body
    assert site.handle(Request("GET", "/nope", {}), "csrf") is None
    assert site.handle(Request("GET", "/apps/platform-system/demo", {}), "csrf") is None
    assert site.handle(Request("GET", "/static/../site.py", {}), "csrf") is None
    css = site.handle(Request("GET", "/static/app.css", {}), "csrf")
    assert css is not None and css.content_type.startswith("text/css")
    assert b"http" not in css.body  # nothing from the network
