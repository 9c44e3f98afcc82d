"""The in-house GitOps reconciler: Application objects -> git -> objects in the cluster.

source.py   fetch a revision of a git repository into a local cache (git CLI)
render.py   files at a path -> objects (pure; errors carry file and line)
plan.py     desired vs live vs inventory -> a frozen Plan (pure)
apply.py    server-side apply, kind order within sync waves, health gates
prune.py    delete what left the repository, from the inventory only
status.py   status, conditions and inventory of an Application (pure builders)
controller.py  the work queue, triggers (interval, webhook, watches) and reconcile
cache.py    list+watch caches of managed kinds (live state, drift triggers)
server.py   HTTP: /webhook, /metrics, /healthz
leader.py   leader election with a coordination.k8s.io Lease
program.py  `platform run reconciler` entry point
manifests/  CRD, RBAC, Deployment, Service for running it in the cluster
"""
