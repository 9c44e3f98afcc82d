"""What the CLI asks of the reconciler: list Applications, request a sync, diff one.

    list_apps(client, namespace)          one AppRow per Application (name, sync, health ...)
    request_sync(client, key)             set the refresh annotation; returns its token
    wait_handled(client, key, token)      block until the reconciler has handled it
    diff_app(client, app, cache_dir)      what a sync would change, via server-side dry run;
                                          desired and live state from the controller's loader
                                          (stacks/reconciler/desired.py): an error reading live
                                          state is reported, never taken for "absent"

Used by `platform apps`, `platform sync` and `platform diff` (bootstrap/cli) and by the
bootstrap stages. No click, no printing: values in, values out.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from stacks.errors import PermanentError, PlatformError, WaitingError
from stacks.kube.objects import KubeObject, ObjectReader, ObjectRef, condition_of
from stacks.reconciler.api import API_VERSION, FIELD_MANAGER, KIND, REFRESH, AppKey, AppSpec
from stacks.reconciler.desired import Loader, ReconcileFailed
from stacks.reconciler.hooks import describe_hooks
from stacks.reconciler.ignore import keep_live_values, rules_for
from stacks.reconciler.plan import Desired, make_plan
from stacks.reconciler.source import GitCache


class Client(ObjectReader, Protocol):
    def get_ref(self, ref: ObjectRef) -> KubeObject | None: ...
    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str = "",
    ) -> KubeObject: ...
    def apply(
        self, obj: KubeObject, field_manager: str, force: bool = True, dry_run: bool = False
    ) -> KubeObject: ...
    def resource(self, api_version: str, kind: str) -> Any: ...


@dataclass(frozen=True)
class AppRow:
    namespace: str
    name: str
    sync: str
    health: str
    revision: str
    ready: str
    message: str
    hooks: str = ""  # the last sync operation's hooks, one line (hooks.describe_hooks)


def list_apps(client: Client, namespace: str | None = None) -> list[AppRow]:
    rows = []
    for obj in client.list_objects(API_VERSION, KIND, namespace):
        status = obj.get("status") or {}
        ready = condition_of(obj, "Ready") or {}
        meta = obj.get("metadata") or {}
        rows.append(
            AppRow(
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                sync=str((status.get("sync") or {}).get("status") or "Unknown"),
                health=str((status.get("health") or {}).get("status") or "Unknown"),
                revision=str((status.get("sync") or {}).get("revision") or "")[:12],
                ready=str(ready.get("status") or "Unknown"),
                message=str(
                    ready.get("message") or (status.get("health") or {}).get("message") or ""
                ),
                hooks=describe_hooks(status.get("hooks")),
            )
        )
    return sorted(rows, key=lambda r: (r.namespace, r.name))


def find_app(client: Client, name: str, namespace: str | None) -> KubeObject:
    """The Application `name` (in `namespace`, or the only one of that name anywhere)."""
    if namespace:
        obj = client.get(API_VERSION, KIND, name, namespace)
        if obj is None:
            raise PermanentError(
                f"there is no Application '{namespace}/{name}'",
                hint="list them with `platform apps`",
            )
        return obj
    found = [
        o
        for o in client.list_objects(API_VERSION, KIND)
        if (o.get("metadata") or {}).get("name") == name
    ]
    if not found:
        raise PermanentError(
            f"there is no Application named {name!r}", hint="list them with `platform apps`"
        )
    if len(found) > 1:
        spaces = ", ".join(sorted(str(o["metadata"]["namespace"]) for o in found))
        raise PermanentError(
            f"Applications named {name!r} exist in several namespaces ({spaces})",
            hint="pick one with --namespace",
        )
    return found[0]


def request_sync(client: Client, key: AppKey) -> str:
    token = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client.merge_patch(
        API_VERSION, KIND, key.name, {"metadata": {"annotations": {REFRESH: token}}}, key.namespace
    )
    return token


def wait_handled(client: Client, key: AppKey, token: str, timeout: float) -> KubeObject:
    deadline = time.monotonic() + timeout
    while True:
        obj = client.get(API_VERSION, KIND, key.name, key.namespace)
        if obj is None:
            raise PermanentError(f"the Application '{key}' was deleted")
        if (obj.get("status") or {}).get("lastHandledRefresh") == token:
            return obj
        if time.monotonic() > deadline:
            raise WaitingError(
                f"the reconciler has not handled the sync of '{key}' within {timeout:.0f}s",
                hint="check it runs: `kubectl -n platform-system get pods`, or `platform run reconciler` on this machine",
            )
        time.sleep(0.2)


@dataclass(frozen=True)
class ObjectDiff:
    ref: ObjectRef
    action: str  # create, update, prune
    diff: str  # unified diff of YAML


_NOISE = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


def _clean(obj: KubeObject | None) -> KubeObject:
    if obj is None:
        return {}
    result = copy.deepcopy(obj)
    result.pop("status", None)
    for key in _NOISE:
        (result.get("metadata") or {}).pop(key, None)
    return result


def _yaml(obj: KubeObject) -> list[str]:
    return yaml.safe_dump(obj, sort_keys=True).splitlines(keepends=True) if obj else []


def _hook_entry(item: Desired) -> ObjectDiff:
    """A hook in `platform diff`: when a sync runs it, or why it never does."""
    hook = item.hook
    assert hook is not None
    if hook.skip:
        return ObjectDiff(item.ref, "skip", f"# {hook.skip}\n")
    named = "generateName: a new object each sync" if item.ref.name.endswith("-") else "named"
    policies = ", ".join(sorted(str(p) for p in hook.policies))
    text = (
        f"# {'/'.join(str(p) for p in hook.phases)} hook, wave {item.wave} ({named}); "
        f"delete policy {policies}; runs when a sync runs, not compared with the cluster\n"
    )
    return ObjectDiff(item.ref, "hook", text)


HOOK_ACTIONS = ("hook", "skip")  # diff entries that are not changes


def diff_app(
    client: Client, app: KubeObject, cache_dir: Path, credentials_file: Path | None = None
) -> list[ObjectDiff]:
    """What a sync of `app` would change now, by server-side dry run against live state.

    `credentials_file` (git-credentials lines) logs in to a repository the Application
    names no Secret for, as the reconciler's --git-credentials-file does."""
    spec = AppSpec.parse(app)
    loader = Loader(client, GitCache(cache_dir), credentials_file)
    try:
        state = loader.load(spec, app.get("status") or {})
    except ReconcileFailed as error:
        raise PermanentError(f"cannot diff Application '{spec.key}': {error}") from error
    revision, desired, inventory = state.revision, state.desired, state.inventory
    live_objects, live = state.objects, state.live
    plan = make_plan(
        spec.key,
        desired,
        live,
        inventory,
        prune=True,
        allow_empty=spec.allow_empty,
        allow_mass_prune=True,
        revision=revision,
    )
    diffs: list[ObjectDiff] = []
    for item in desired:
        if item.hook is not None:  # not compared: run (or skipped) by a sync
            diffs.append(_hook_entry(item))
            continue
        live_obj = live_objects.get(item.ref.key)
        before = _clean(live_obj)
        try:
            after_obj = client.apply(item.obj, FIELD_MANAGER, force=True, dry_run=True)
            rules = rules_for(spec.ignore_differences, *item.ref.key)
            if rules and live_obj is not None:  # ignoreDifferences: no diff in those fields
                after_obj = keep_live_values(after_obj, live_obj, rules)
            after = _clean(after_obj)
        except PlatformError as error:
            diffs.append(ObjectDiff(item.ref, "error", f"# {error}\n"))
            continue
        if before == after:
            continue
        text = "".join(
            difflib.unified_diff(_yaml(before), _yaml(after), f"live/{item.ref}", f"git/{item.ref}")
        )
        diffs.append(ObjectDiff(item.ref, "update" if before else "create", text))
    for step in plan.prunes:
        before = _clean(live_objects.get(step.ref.key))
        text = "".join(difflib.unified_diff(_yaml(before), [], f"live/{step.ref}", "git (removed)"))
        diffs.append(ObjectDiff(step.ref, "prune", text))
    return diffs
