"""Shared Kubernetes helpers for every component: the API adapter, caches, the controller
shape, and the small rules every controller shares.

    client.py      the only module in the project that imports the `kubernetes` package
    cache.py queue.py leader.py events.py   list+watch caches, work queue, Lease, Events
    controller.py  the one controller shape: `Runtime` (loop, requeue, backoff) and
                   `ObjectReconciler` (load, named steps, status once) -- docs/controllers.md
    backoff.py conditions.py durations.py waits.py   one home for each small rule

Everything above the client passes plain JSON dicts (`KubeObject`) and `ObjectRef`
values. Nothing here imports another part of `stacks` but `stacks.errors` and
`stacks.redact` (the import-linter layers contract in pyproject.toml).
"""
