"""The in-house git smart-HTTP server: bare repositories, basic auth, push webhooks.

Started as `platform run gitserver ...` (see `program.py`), in the cluster from the
manifests in `manifests/` and on a laptop or in tests as a host process. The bootstrap
`gitserver` stage deploys it and creates the `gitops` repository through its API; the
reconciler fetches from it and receives its push webhooks.

    program.py   flags, logging, wiring; `main(argv) -> int`
    server.py    the waitress WSGI server and graceful shutdown on SIGTERM
    guard.py     waitress hardened: auth before any body, scratch budget, slow peers shed
    limits.py    body sizes and the scratch-space budget (= the Deployment's /tmp)
    throttle.py  failed-login throttle per client address; the one login decision
    logsafe.py   control characters escaped in log lines
    app.py       the WSGI application: routing, auth checks, repo API, access log
    auth.py      the credentials file and HTTP basic auth (constant-time compare)
    repos.py     repository names and the bare repositories on the data directory
    backend.py   `git http-backend` driven as CGI (clone, fetch, push, protocol v2)
    receive.py   pure: receive-pack commands from pkt-lines; which updates were accepted
    webhooks.py  signed push webhooks, delivered in the background with retries
"""
