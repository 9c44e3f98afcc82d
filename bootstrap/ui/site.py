"""The dashboard's routes: which page a path is, the one action, and the event stream.

    GET  /                          overview: stages, components (with causes), places
    GET  /apps                      Applications
    GET  /apps/NS/NAME              one Application (+ /live: its refreshed part,
                                    /diff: what `platform diff` computes)
    POST /apps/NS/NAME/sync         "Sync now" (`platform sync --no-wait`), then back
    GET  /repo  /vault  /certs      repository, Vault's seal state, certificates
    GET  /events                    server-sent events from the one Application watch
    GET  /static/app.css|app.js     the only assets, from the package

Security (token, Host, CSRF, bounds) is the server's (server.py), before any of this.
`serve(platform, port)` starts the watch and the server. Called by `platform ui`.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from typing import Any

from bootstrap.ui import pages
from bootstrap.ui.live import AppFeed
from bootstrap.ui.readers import CREDENTIAL_COMMANDS, Platform
from bootstrap.ui.server import Request, Response, Stream, UiServer
from stacks.errors import PlatformError
from stacks.kube.objects import KubeObject

log = logging.getLogger(__name__)

_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_APP = re.compile(rf"^/apps/(?P<ns>{_NAME})/(?P<name>{_NAME})(?P<part>/live|/diff|/sync)?$")
_ASSETS = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


def _html(text: str, status: int = 200) -> Response:
    return Response(status, text.encode())


class Site:
    """Routes over one platform (server.Routes)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._assets = {
            name: resources.files("bootstrap.ui").joinpath("assets", name).read_bytes()
            for name in _ASSETS
        }

    # ---- server.Routes ----------------------------------------------------------------

    def stream(self, request: Request) -> Stream | None:
        if request.path != "/events" or self.platform.feed is None:
            return None
        return self.platform.feed.subscribe()

    def handle(self, request: Request, csrf: str) -> Response | None:
        path = request.path
        try:
            if request.method == "POST":
                match = _APP.match(path)
                if match is None or match["part"] != "/sync":
                    return None
                return self._sync(match["ns"], match["name"])
            if path.startswith("/static/"):
                name = path.removeprefix("/static/")
                if name not in _ASSETS:
                    return None
                return Response(200, self._assets[name], _ASSETS[name])
            if path == "/":
                return self._page("Overview", "overview", self._overview)
            if path == "/apps":
                return self._page("Applications", "apps", self._applications)
            if path == "/repo":
                return self._page("Repository", "repo", self._repository)
            if path == "/vault":
                return self._page("Vault", "vault", self._vault)
            if path == "/certs":
                return self._page("Certificates", "certs", self._certificates)
            match = _APP.match(path)
            if match is not None and match["part"] != "/sync":
                return self._app(match["ns"], match["name"], match["part"] or "", csrf, request)
        except PlatformError as error:
            return _html(
                pages.layout(
                    "Error",
                    "",
                    self.platform.settings.name,
                    f'<p class="banner bad" role=alert>✖ {pages.esc(error)}</p>',
                ),
                502,
            )
        return None

    # ---- pages ------------------------------------------------------------------------

    def _banner(self) -> tuple[str, bool]:
        """The banner for a platform that is missing or down, and whether the cluster
        answers."""
        if not self.platform.exists():
            return pages.banner_missing(self.platform.settings.name), False
        ready, detail = self.platform.cluster()
        if not ready:
            return pages.banner_down(detail), False
        problem = self.platform.feed_problem()
        return (pages.banner_stale(problem) if problem else ""), True

    def _page(self, title: str, active: str, body: Any) -> Response:
        banner, up = self._banner()
        content = body(up) if self.platform.exists() else ""
        return _html(pages.layout(title, active, self.platform.settings.name, content, banner))

    def _objects(self) -> dict[str, KubeObject]:
        return {
            f"{(o.get('metadata') or {}).get('namespace', '')}/{o['metadata']['name']}": o
            for o in self.platform.apps()
        }

    def _overview(self, up: bool) -> str:
        objects = self._objects()
        rows = self.platform.rows(list(objects.values()))
        components = [
            (
                row,
                self.platform.problem(objects[f"{row.namespace}/{row.name}"], row.name)
                if up
                else "",
            )
            for row in rows
        ]
        activity = list(self.platform.feed.activity) if self.platform.feed else []
        return pages.overview(
            self.platform.stages(),
            components,
            objects,
            self.platform.places(),
            CREDENTIAL_COMMANDS,
            activity,
        )

    def _applications(self, up: bool) -> str:
        objects = self._objects()
        return pages.applications(self.platform.rows(list(objects.values())), objects)

    def _repository(self, up: bool) -> str:
        if not up:
            return ""
        return pages.repository(self.platform.repository())

    def _vault(self, up: bool) -> str:
        return pages.vault(*self.platform.vault())

    def _certificates(self, up: bool) -> str:
        if not up:
            return ""
        certs, error = self.platform.certificates()
        return pages.certificates(certs, error, self.platform.ca())

    def _app(
        self, namespace: str, name: str, part: str, csrf: str, request: Request
    ) -> Response | None:
        detail = self.platform.detail(namespace, name)
        if detail is None:
            return None
        if part == "/diff":
            try:
                fragment = pages.diff_fragment(self.platform.diff(namespace, name))
            except PlatformError as error:
                fragment = pages.diff_fragment([], str(error))
            return _html(fragment)
        row = self.platform.rows([detail.obj])[0]
        problem = self.platform.problem(detail.obj, name)
        if part == "/live":
            return _html(pages.app_live(row, detail, problem))
        banner, _ = self._banner()
        body = pages.app_page(row, detail, problem, csrf, request.query.get("requested", "")[:40])
        return _html(
            pages.layout(
                f"Application {name}",
                "apps",
                self.platform.settings.name,
                body,
                banner,
                app=f"{namespace}/{name}",
            )
        )

    def _sync(self, namespace: str, name: str) -> Response | None:
        if self.platform.get(namespace, name) is None:
            return None
        token = self.platform.sync(namespace, name)
        location = f"/apps/{namespace}/{name}?requested={token}"
        return Response(303, b"", "text/plain; charset=utf-8", (("Location", location),))

    # ---- live -------------------------------------------------------------------------

    def describe(self, obj: KubeObject | None, key: str) -> dict[str, Any]:
        """What every open tab gets for one change: the rows to swap in (rendered once)."""
        if obj is None:
            return {"key": key, "deleted": True}
        row = self.platform.rows([obj])[0]
        try:
            problem = self.platform.problem(obj, row.name)
        except PlatformError:
            problem = ""
        return {
            "key": key,
            "rows": {
                "apps": pages.app_row(row, obj),
                "components": pages.component_row(row, problem),
            },
        }


def serve(platform: Platform, port: int = 0) -> UiServer:
    """Watch the platform's Applications and serve the dashboard on 127.0.0.1:`port`."""
    site = Site(platform)
    server = UiServer(site, port)  # first: a port in use fails before any watch starts
    if platform.exists():
        try:
            client = platform.client()
        except PlatformError as error:
            log.warning("the dashboard cannot reach the cluster: %s", error)
        else:
            platform.feed = AppFeed(client, site.describe)
    return server.start()
