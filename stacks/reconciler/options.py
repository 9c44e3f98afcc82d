"""Sync options: the Application's `syncPolicy.syncOptions` and the per-object
`sync-options` annotation (ours, `gitops.platform.local/sync-options`, or Argo CD's
`argocd.argoproj.io/sync-options`: "Prune=false,Delete=false", spaces trimmed). Pure.

What each does here:

  Prune=false            (object) never pruned; it leaves the inventory and stays
  Delete=false           (object) kept when the Application is deleted with the
                         cascade finalizer; Helm's `helm.sh/resource-policy: keep` too
  Replace=true           (object) replaced (PUT, or POST when absent) instead of
                         applied server-side
  ServerSideApply=true   accepted: every object is applied server-side with
                         --force-conflicts already; =false is accepted and changes
                         nothing (there is no client-side apply here)
  SkipDryRunOnMissingResource=true  (object) an object whose kind the API
                         server does not serve yet does not fail the render; it is
                         planned as namespaced and its apply says what is missing
  Validate=false         accepted: server-side apply is sent without strict field
                         validation already
  PruneLast=true         (app) prune only after every wave is applied and healthy
  ApplyOutOfSyncOnly=true (app) accepted: only objects that differ are applied anyway
  PrunePropagationPolicy=foreground|background|orphan (app) how pruned objects'
                         dependents go. Without it, background, as this reconciler
                         always pruned (Argo CD's default is foreground: set it to get
                         that)
  FailOnSharedResource=true (app) the sync fails when an object it would apply
                         carries another Application's tracking id
  RespectIgnoreDifferences=true (app) ignoreDifferences also shapes what is applied
                         (ignore.py)

Prune, Delete, Replace and SkipDryRunOnMissingResource are read from objects only; in
an Application's syncOptions they are not applied yet.

Called by plan.py, apply.py, waves.py and finalize.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SYNC_OPTIONS = "gitops.platform.local/sync-options"
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
HELM_RESOURCE_POLICY = "helm.sh/resource-policy"
PROPAGATION = {"foreground": "Foreground", "background": "Background", "orphan": "Orphan"}


def parse_options(items: Iterable[str]) -> dict[str, str]:
    """["A=b", " C = d "] -> {"A": "b", "C": "d"} (later ones win)."""
    found: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if sep and name.strip():
            found[name.strip()] = value.strip()
    return found


def object_options(annotations: Mapping[str, str]) -> dict[str, str]:
    """An object's own sync options (Argo CD's annotation, then ours, which wins)."""
    found = parse_options(annotations.get(ARGO_SYNC_OPTIONS, "").split(","))
    found.update(parse_options(annotations.get(SYNC_OPTIONS, "").split(",")))
    if annotations.get(HELM_RESOURCE_POLICY, "").strip() == "keep":
        found.setdefault("Delete", "false")
    return found


@dataclass(frozen=True)
class AppOptions:
    prune_last: bool = False
    propagation: str = "Background"
    fail_on_shared: bool = False
    respect_ignore: bool = False

    @classmethod
    def of(cls, sync_options: Iterable[str]) -> AppOptions:
        found = parse_options(sync_options)
        return cls(
            prune_last=found.get("PruneLast") == "true",
            propagation=PROPAGATION.get(
                found.get("PrunePropagationPolicy", "").lower(), "Background"
            ),
            fail_on_shared=found.get("FailOnSharedResource") == "true",
            respect_ignore=found.get("RespectIgnoreDifferences") == "true",
        )
