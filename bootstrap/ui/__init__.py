"""`platform ui`: a local dashboard for one platform, served on 127.0.0.1.

    server.py   the HTTP server: bounded requests, Host check, access token, CSRF (no pages)
    live.py     one watch on Applications per server, fanned out to browsers (SSE)
    readers.py  what the pages show, read through the CLI's own adapters and helpers
    pages.py    HTML for each page (plain HTML, one stylesheet, one small script)
    site.py     routes: path -> page, the "Sync now" action, the event stream
    assets/     app.css, app.js: shipped as package data, nothing from the network

Called by `platform ui` (bootstrap/cli/ui.py). Nothing here is installed in the cluster.
"""
