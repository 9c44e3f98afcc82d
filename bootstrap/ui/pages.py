"""HTML for the dashboard's pages: plain server-rendered HTML, escaped at one place.

Every status is an icon and a word, never a colour alone (`badge`). The same functions
render a row for a page and for a live update (site.py sends rows through the event
stream, app.js swaps them in), so a page and its updates cannot disagree.

Called by bootstrap/ui/site.py. Pure: values in, text out.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bootstrap.ui.readers import Certificate, Detail, Repository, Stage, age, last_written
from stacks.kube.objects import KubeObject

if TYPE_CHECKING:
    from stacks.reconciler.inspect import AppRow, ObjectDiff

NAV = (
    ("/", "overview", "Overview"),
    ("/apps", "apps", "Applications"),
    ("/repo", "repo", "Repository"),
    ("/vault", "vault", "Vault"),
    ("/certs", "certs", "Certificates"),
)
# word -> (css class, icon): the icon and the word carry the meaning, the colour helps.
_STATES = {
    "Synced": ("ok", "✔"),
    "Healthy": ("ok", "✔"),
    "True": ("ok", "✔"),
    "done": ("ok", "✔"),
    "verified": ("ok", "✔"),
    "applied": ("ok", "✔"),
    "unsealed": ("ok", "✔"),
    "OutOfSync": ("warn", "⚠"),
    "Progressing": ("busy", "⟳"),
    "syncing": ("busy", "⟳"),
    "running": ("busy", "⟳"),
    "not applied": ("busy", "⟳"),
    "Suspended": ("idle", "⏸"),
    "pending": ("idle", "○"),
    "Missing": ("bad", "∅"),
    "Degraded": ("bad", "✖"),
    "False": ("bad", "✖"),
    "failed": ("bad", "✖"),
    "sealed": ("bad", "✖"),
    "down": ("bad", "✖"),
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def badge(word: str, label: str | None = None) -> str:
    css, icon = _STATES.get(word, ("idle", "?"))
    return f'<span class="badge {css}"><span aria-hidden="true">{icon}</span> {esc(label or word)}</span>'


def when(stamp: str) -> str:
    if not stamp:
        return '<span class="muted">—</span>'
    return f'<time datetime="{esc(stamp)}" title="{esc(stamp)}">{esc(age(stamp) or stamp)}</time>'


def table(headers: Sequence[str], rows: Iterable[str], empty: str, css: str = "") -> str:
    body = "".join(rows)
    if not body:
        body = f'<tr class="empty"><td colspan="{len(headers)}">{esc(empty)}</td></tr>'
    head = "".join(f"<th scope=col>{esc(h)}</th>" for h in headers)
    return f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def layout(
    title: str, active: str, platform: str, body: str, banner: str = "", app: str = ""
) -> str:
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if key == active else ""}>{esc(label)}</a>'
        for href, key, label in NAV
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · platform {esc(platform)}</title>"
        '<link rel=stylesheet href="/static/app.css"><script src="/static/app.js" defer></script>'
        f'</head><body data-page="{esc(active)}" data-app="{esc(app)}">'
        f'<header><a class=brand href="/">platform <b>{esc(platform)}</b></a>'
        f'<nav aria-label="pages">{nav}</nav>'
        '<span id=live class="live idle" role=status>○ connecting</span></header>'
        f"<main>{banner}<h1>{esc(title)}</h1>{body}</main></html>\n"
    )


def banner_missing(name: str) -> str:
    return (
        '<p class="banner bad" role=alert><span aria-hidden="true">✖</span> '
        f"Platform {esc(repr(name))} does not exist. Create it with "
        f"<code>platform up --name {esc(name)}</code>.</p>"
    )


def banner_down(detail: str) -> str:
    return (
        '<p class="banner bad" role=alert><span aria-hidden="true">✖</span> '
        f"The platform is down: its cluster does not answer ({esc(detail)}). "
        "This page shows what was recorded and loads again by itself when the cluster is back. "
        "<code>platform status</code> says more; <code>platform up</code> resumes it.</p>"
    )


def banner_stale(problem: str) -> str:
    return (
        f'<p class="banner warn" role=status><span aria-hidden="true">⚠</span> {esc(problem)}</p>'
    )


# ---- rows (also sent live) ------------------------------------------------------------


def app_link(row: AppRow) -> str:
    return f'<a href="/apps/{esc(row.namespace)}/{esc(row.name)}">{esc(row.name)}</a>'


def app_row(row: AppRow, obj: KubeObject) -> str:
    key = f"{row.namespace}/{row.name}"
    revision = esc(row.revision[:7]) if row.revision else '<span class="muted">—</span>'
    return (
        f'<tr data-row=apps data-key="{esc(key)}"><th scope=row>{app_link(row)}'
        f"<div class=muted>{esc(row.namespace)}</div></th>"
        f"<td>{badge(row.sync)}</td><td>{badge(row.health)}</td>"
        f'<td><code class=rev title="{esc(row.revision)}">{revision}</code></td>'
        f"<td class=msg>{esc(row.message[:300])}</td><td>{when(last_written(obj))}</td></tr>"
    )


def component_row(row: AppRow, problem: str) -> str:
    key = f"{row.namespace}/{row.name}"
    cause = (
        esc(problem)
        if problem
        else '<span class="muted">ready</span>'
        if (row.sync, row.health) == ("Synced", "Healthy")
        else esc(row.message)
    )
    return (
        f'<tr data-row=components data-key="{esc(key)}"><th scope=row>{app_link(row)}</th>'
        f"<td>{badge(row.sync)}</td><td>{badge(row.health)}</td><td class=msg>{cause}</td></tr>"
    )


APP_HEADERS = ("Application", "Sync", "Health", "Revision", "Message", "Last sync")
COMPONENT_HEADERS = ("Component", "Sync", "Health", "Cause when not ready")


def activity_list(lines: Iterable[tuple[float, str]]) -> str:
    items = "".join(
        f"<li><time>{dt.datetime.fromtimestamp(t).strftime('%H:%M:%S')}</time> {esc(text)}</li>"
        for t, text in reversed(list(lines))
    )
    return f"<ol id=activity class=activity aria-live=polite>{items}</ol>"


# ---- pages ----------------------------------------------------------------------------


def overview(
    stages: Sequence[Stage],
    components: Sequence[tuple[AppRow, str]],
    apps: dict[str, KubeObject],
    places: Sequence[tuple[str, str]],
    credentials: Sequence[tuple[str, str]],
    activity: Iterable[tuple[float, str]],
) -> str:
    stage_rows = (
        f"<tr><th scope=row>{esc(s.name)}</th><td>{badge(s.outcome)}</td>"
        f"<td class=num>{'' if s.seconds is None else f'{s.seconds:.1f} s'}</td>"
        f"<td class=msg>{esc(s.detail[:300])}</td></tr>"
        for s in stages
    )
    total = sum(s.seconds or 0.0 for s in stages)
    place_rows = "".join(
        f"<div><dt>{esc(label)}</dt><dd><code>{esc(value)}</code></dd></div>"
        for label, value in places
    )
    credential_rows = "".join(
        f"<div><dt>{esc(label)}</dt><dd><code>{esc(command)}</code></dd></div>"
        for label, command in credentials
    )
    ready = sum(1 for r, _ in components if (r.sync, r.health) == ("Synced", "Healthy"))
    return (
        '<div class="grid">'
        f"<section><h2>Components <span class=count>{ready}/{len(components)} ready</span></h2>"
        + table(
            COMPONENT_HEADERS,
            (component_row(r, p) for r, p in components),
            "No Applications yet: the reconciler stage creates the root one.",
            "components",
        )
        + "</section>"
        f"<section><h2>Where things are</h2><dl class=places>{place_rows or '<div><dt>—</dt><dd>nothing recorded yet</dd></div>'}</dl>"
        "<h3>Credentials</h3><p class=muted>Never shown here: each command prints one.</p>"
        f"<dl class=places>{credential_rows}</dl></section>"
        f"<section><h2>Stages <span class=count>{total:.0f} s in all</span></h2>"
        + table(("Stage", "Outcome", "Time", "Detail"), stage_rows, "no stage has run")
        + "</section>"
        f"<section><h2>Activity</h2>{activity_list(activity)}"
        "<p class=muted>Changes appear here as the reconciler reports them.</p></section>"
        "</div>"
    )


def applications(rows: Sequence[AppRow], apps: dict[str, KubeObject]) -> str:
    return table(
        APP_HEADERS,
        (app_row(r, apps.get(f"{r.namespace}/{r.name}", {})) for r in rows),
        "No Applications yet.",
        "apps",
    )


def app_live(row: AppRow, detail: Detail, problem: str) -> str:
    """The part of one Application's page that the event stream refreshes."""
    obj = detail.obj
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    source = spec.get("source") or {}
    facts = [
        ("Sync", badge(row.sync)),
        ("Health", badge(row.health)),
        (
            "Revision",
            f'<code class=rev title="{esc(row.revision)}">{esc(row.revision[:12])}</code>',
        ),
        ("Last applied", f"<code>{esc(str(status.get('lastAppliedRevision') or '')[:12])}</code>"),
        (
            "Source",
            f"<code>{esc(source.get('repoURL', ''))}</code> <code>{esc(source.get('path', ''))}</code>",
        ),
        ("Last sync", when(last_written(obj))),
        (
            "Last “Sync now” handled",
            f"<code id=handled>{esc(status.get('lastHandledRefresh') or '—')}</code>",
        ),
    ]
    fact_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    message = f'<p class="message">{esc(row.message)}</p>' if row.message else ""
    cause = (
        f'<p class="banner warn"><span aria-hidden="true">⚠</span> {esc(problem)}</p>'
        if problem
        else ""
    )
    resources = status.get("resources") or []
    resource_rows = []
    for r in sorted(
        resources, key=lambda r: (r.get("syncWave", 0), r.get("kind", ""), r.get("name", ""))
    ):
        health = r.get("health") or {}
        resource_rows.append(
            f"<tr><th scope=row>{esc(r.get('kind', ''))}</th><td>{esc(r.get('namespace') or '—')}</td>"
            f"<td>{esc(r.get('name', ''))}</td><td>{badge(str(r.get('status', 'Unknown')))}"
            f"{' ' + badge('OutOfSync', 'requires pruning') if r.get('requiresPruning') else ''}</td>"
            f"<td>{badge(str(health.get('status', ''))) if health else '<span class=muted>—</span>'}</td>"
            f"<td class=msg>{esc(health.get('message', ''))}</td></tr>"
        )
        key = (str(r.get("kind", "")), str(r.get("namespace") or ""), str(r.get("name", "")))
        for pod, pod_status, pod_message in detail.pods.get(key, []):
            resource_rows.append(
                f'<tr class=child><th scope=row><span aria-hidden="true">└</span> Pod</th>'
                f"<td>{esc(key[1])}</td><td>{esc(pod)}</td><td></td>"
                f"<td>{badge(pod_status)}</td><td class=msg>{esc(pod_message)}</td></tr>"
            )
    omitted = int(status.get("resourcesOmitted") or 0)
    conditions = (
        f"<tr><th scope=row>{esc(c.get('type', ''))}</th><td>{badge(str(c.get('status', '')))}</td>"
        f"<td>{esc(c.get('reason', ''))}</td><td class=msg>{esc(c.get('message', ''))}</td>"
        f"<td>{when(str(c.get('lastTransitionTime') or ''))}</td></tr>"
        for c in status.get("conditions") or []
    )
    events = (
        f"<tr><td>{badge('False' if e.get('type') == 'Warning' else 'True', str(e.get('type', '')))}</td>"
        f"<td>{esc(e.get('reason', ''))}</td><td class=msg>{esc(e.get('message', ''))}</td>"
        f"<td class=num>{esc(e.get('count', 1))}</td>"
        f"<td>{when(str(e.get('lastTimestamp') or e.get('eventTime') or ''))}</td></tr>"
        for e in reversed(detail.events)
    )
    return (
        f"<dl class=facts>{fact_html}</dl>{message}{cause}"
        f"<h2>Resources <span class=count>{len(resources)}</span></h2>"
        + table(
            ("Kind", "Namespace", "Name", "Sync", "Health", "Message"),
            resource_rows,
            "no resources recorded yet",
            "tree",
        )
        + (f"<p class=muted>{omitted} healthy, synced objects not listed.</p>" if omitted else "")
        + "<h2>Conditions</h2>"
        + table(("Type", "Status", "Reason", "Message", "Since"), conditions, "no conditions yet")
        + "<h2>Events</h2>"
        + (f'<p class="banner warn">{esc(detail.events_error)}</p>' if detail.events_error else "")
        + table(("Type", "Reason", "Message", "Count", "Last seen"), events, "no events")
    )


def app_page(row: AppRow, detail: Detail, problem: str, csrf: str, requested: str) -> str:
    key = f"{row.namespace}/{row.name}"
    note = (
        f'<p class="banner ok" role=status><span aria-hidden="true">⟳</span> '
        f"Sync requested ({esc(requested)}); the status below changes when the reconciler has handled it.</p>"
        if requested
        else ""
    )
    return (
        f'<form class=actions method=post action="/apps/{esc(key)}/sync">'
        f'<input type=hidden name=csrf value="{esc(csrf)}">'
        '<button type=submit id=sync-now><span aria-hidden="true">⟳</span> Sync now</button>'
        "<span class=muted>the same as <code>platform sync "
        f"{esc(row.name)}</code>: fetch and apply its source now</span></form>{note}"
        f'<div id=app-live data-src="/apps/{esc(key)}/live">{app_live(row, detail, problem)}</div>'
        f'<h2>Diff with git</h2><div id=diff data-src="/apps/{esc(key)}/diff">'
        f'<p><a href="/apps/{esc(key)}/diff">Show what a sync would change</a> '
        "(what <code>platform diff</code> computes)</p></div>"
    )


def diff_fragment(diffs: Sequence[ObjectDiff], error: str = "") -> str:
    if error:
        return f'<p class="banner bad"><span aria-hidden="true">✖</span> {esc(error)}</p>'
    if not diffs:
        return f"<p>{badge('Synced', 'in sync with git')} a sync would change nothing.</p>"
    parts = []
    for item in diffs:
        lines = []
        for line in item.diff.splitlines():
            css = (
                "add"
                if line.startswith("+") and not line.startswith("+++")
                else "del"
                if line.startswith("-") and not line.startswith("---")
                else ""
            )
            lines.append(f'<span class="{css}">{esc(line)}</span>' if css else esc(line))
        parts.append(
            f"<h3>{esc(item.action)}: <code>{esc(item.ref)}</code></h3>"
            f"<pre class=diff>{chr(10).join(lines)}</pre>"
        )
    return "".join(parts)


def repository(repo: Repository) -> str:
    head = f"<p>Repository <code>{esc(repo.url)}</code> (the root Application's source).</p>"
    if repo.error:
        head += f'<p class="banner warn"><span aria-hidden="true">⚠</span> {esc(repo.error)}</p>'
    rows = []
    for commit in repo.commits:
        apps = (
            " ".join(
                badge(
                    "applied" if ok else "not applied",
                    f"{name} {'applied' if ok else 'not applied yet'}",
                )
                for name, ok in commit.apps
            )
            or '<span class="muted">no Application</span>'
        )
        rows.append(
            f'<tr><td class=nowrap><code title="{esc(commit.sha)}">{esc(commit.sha[:7])}</code></td>'
            f"<td class=nowrap>{when(commit.when)}</td><td>{esc(commit.author)}</td>"
            f"<td class=msg>{esc(commit.subject)}</td><td>{apps}</td></tr>"
        )
    return head + table(
        ("Commit", "When", "Author", "Message", "Applications changed"), rows, "no commits"
    )


def vault(address: str, seal: str) -> str:
    word = (
        "unsealed"
        if "unsealed" in seal
        else "sealed"
        if "sealed" in seal
        else "down"
        if "cannot" in seal
        else "pending"
    )
    return (
        f"<dl class=facts><div><dt>Address</dt><dd><code>{esc(address or '—')}</code></dd></div>"
        f"<div><dt>Seal state</dt><dd>{badge(word)} {esc(seal)}</dd></div></dl>"
        "<p class=muted>Unseal with <code>platform vault unseal</code>; the login is printed "
        "by <code>platform vault credentials</code>; the UI address by "
        "<code>platform vault ui</code>.</p>"
    )


def certificates(certs: Sequence[Certificate], error: str, ca: tuple[str, str, str] | None) -> str:
    rows = (
        f"<tr><th scope=row>{esc(c.name)}<div class=muted>{esc(c.namespace)}</div></th>"
        f"<td>{esc(c.issuer)}</td><td>{when(c.not_after)}</td><td>{when(c.renewal)}</td>"
        f"<td>{badge(c.ready)}</td><td class=msg>{esc(c.message)}</td></tr>"
        for c in certs
    )
    ca_html = (
        f"<dl class=facts><div><dt>Local CA</dt><dd><code>{esc(ca[0])}</code></dd></div>"
        f"<div><dt>Issued by</dt><dd><code>{esc(ca[1])}</code></dd></div>"
        f"<div><dt>Expires</dt><dd>{when(ca[2])} <code>{esc(ca[2])}</code></dd></div></dl>"
        if ca
        else "<p class=muted>No local CA recorded yet (the certs stage creates it).</p>"
    )
    return (
        ca_html
        + (f'<p class="banner warn">{esc(error)}</p>' if error else "")
        + table(
            ("Certificate", "Issuer", "Expires", "Renewal", "Ready", "Message"),
            rows,
            "no Certificates",
        )
    )
