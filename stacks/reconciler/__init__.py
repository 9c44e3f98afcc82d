"""The in-house GitOps reconciler: Application objects -> git -> objects in the cluster.

The loop (queue, workers, backoff, leader election) is the shared controller Runtime
of stacks/kube/controller.py, and each reconcile one ObjectReconciler:

controller.py  AppReconciler (load, named steps, status in finish) and AppController
               (the parts and the Runtime assembled)
parts.py    what the parts share (Shared, Sync); triggers.py (events, pushes -> keys),
            waves.py (self-heal gate, the sync operation), finalize.py (deletion),
            memory.py (per-app memory), events.py (Events in the background)
desired.py  the desired-state loader: source.py (git) and sources/ (Helm, Kustomize),
            loader.py and render.py (files -> objects), shared with `platform diff`
plan.py     desired vs live vs inventory -> a frozen Plan (pure); options.py, ignore.py,
            hooks.py, retry.py: sync options, ignoreDifferences, hooks, retries (pure)
apply.py    server-side apply; prune.py deletes what left the repository; hookrun.py
projects.py AppProjects (pure); policy.py the step that applies them
status.py   status, conditions and inventory of an Application (pure builders)
server.py   the push webhook, a POST route of the shared endpoints (stacks/program.py)
metrics.py  its /metrics families; program.py `platform run reconciler`
inspect.py, install.py  what the CLI asks of it, and installing it
manifests/  CRDs, RBAC, Deployment, Service for running it in the cluster
"""
