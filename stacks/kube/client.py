"""The Kubernetes API adapter: the only module that imports the `kubernetes` package.

It borrows the official client's configuration handling (kubeconfig files, contexts,
exec plugins, in-cluster service-account tokens, TLS) and its connection pool, and
speaks plain JSON to the REST API itself: objects go in and come out as dicts, which is
faster than the generated models and keeps every kind, CRDs included, on one path.

Called by the reconciler, the controllers (secrets, certs, dns, unsealer), the bootstrap
stages and the CLI. Errors come out as `stacks.kube.errors.ApiError` subclasses with
trimmed messages.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3

from stacks.errors import PermanentError, trim
from stacks.kube.errors import ApiError, NotFound, Unavailable, error_for_status
from stacks.kube.objects import KubeObject, ObjectRef, split_api_version

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the REST API (from discovery)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{urllib.parse.quote(name)}"
        return base


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: KubeObject


class KubeClient:
    """A thread-safe JSON client for one cluster."""

    def __init__(self, api_client: Any, description: str = "") -> None:
        self._api = api_client
        self._host = api_client.configuration.host.rstrip("/")
        self._pool = api_client.rest_client.pool_manager
        self._discovery: dict[str, dict[str, ResourceInfo]] = {}
        self._discovery_lock = threading.Lock()
        self.description = description or self._host
        # Impersonation (issue 19): views of this client that act as another user share
        # its connection pool and discovery cache; they differ only in one header.
        self._impersonate = ""
        self._views: dict[str, KubeClient] = {}

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeClient:
        """A client for `context` in the kubeconfig at `path` (default: $KUBECONFIG, ~/.kube)."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration
            )
        except (kubernetes.config.ConfigException, OSError) as error:
            where = path or "the default kubeconfig"
            raise PermanentError(
                f"cannot load {where}"
                + (f" (context {context!r})" if context else "")
                + f": {error}",
                hint="pass --kubeconfig PATH and --context NAME of a cluster you can reach",
            ) from error
        configuration.connection_pool_maxsize = 32
        return cls(kubernetes.client.ApiClient(configuration), description=configuration.host)

    @classmethod
    def in_cluster(cls) -> KubeClient:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        configuration.connection_pool_maxsize = 32
        return cls(kubernetes.client.ApiClient(configuration), description="in-cluster")

    @classmethod
    def from_token(
        cls, host: str, token: str, ca_file: str | None, verify: bool = True
    ) -> KubeClient:
        """A client that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        configuration = kubernetes.client.Configuration()
        configuration.host = host
        configuration.api_key = {"authorization": token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = ca_file
        configuration.verify_ssl = verify
        configuration.connection_pool_maxsize = 32
        return cls(kubernetes.client.ApiClient(configuration), description=host)

    @classmethod
    def auto(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        """In-cluster when running in a pod and no kubeconfig is given; else the kubeconfig."""
        if kubeconfig is None and context is None:
            try:
                return cls.in_cluster()
            except kubernetes.config.ConfigException:
                pass
        return cls.from_kubeconfig(kubeconfig, context)

    def impersonating(self, user: str) -> KubeClient:
        """This client acting as `user` (`Impersonate-User`, e.g.
        system:serviceaccount:NS:NAME; the API server adds a ServiceAccount's groups).
        One view per user, kept: same connection pool, same discovery cache."""
        with self._discovery_lock:
            view = self._views.get(user)
            if view is None:
                view = copy.copy(self)  # shallow: the pool, caches and lock are shared
                view._impersonate = user
                view.description = f"{self.description} as {user}"
                self._views[user] = view
            return view

    @property
    def impersonated(self) -> str:
        """The user this client acts as ("" = its own credentials)."""
        return self._impersonate

    @property
    def host(self) -> str:
        return str(self._host)

    def server_ca_file(self) -> str | None:
        ca = self._api.configuration.ssl_ca_cert
        return str(ca) if ca else None

    # ---- raw requests -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = DEFAULT_TIMEOUT,
        what: str = "",
    ) -> Any:
        """One REST call; returns the decoded JSON body. `what` names the object in errors."""
        response = self._send(method, path, body, query, content_type, timeout, stream=False)
        data = response.data
        if response.status >= 400:
            raise self._error(response.status, data, method, what or path)
        return json.loads(data) if data else None

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: dict[str, str] | None,
        content_type: str,
        timeout: float | None,
        stream: bool,
    ) -> Any:
        url = self._host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": "platform"}
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.update(self._auth_headers())
        if self._impersonate:
            headers["Impersonate-User"] = self._impersonate
        try:
            return self._pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=10.0, read=timeout),
                preload_content=not stream,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as error:
            raise Unavailable(
                f"cannot reach the Kubernetes API at {self._host}: {trim(str(error), 200)}",
                hint="check the cluster is running and the kubeconfig points at it",
            ) from error

    def _auth_headers(self) -> dict[str, str]:
        """Bearer token headers (refreshed by the client's hook for exec plugins/in-cluster)."""
        found: dict[str, str] = {}
        for setting in self._api.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                found[str(setting["key"])] = str(setting["value"])
        return found

    @staticmethod
    def _error(status: int, data: bytes, method: str, what: str) -> ApiError:
        reason = ""
        message = ""
        try:
            decoded = json.loads(data)
            message = str(decoded.get("message", ""))
            reason = str(decoded.get("reason", ""))
        except (ValueError, AttributeError):
            message = data.decode(errors="replace") if data else ""
        verb = {
            "GET": "get",
            "PATCH": "apply",
            "POST": "create",
            "PUT": "update",
            "DELETE": "delete",
        }
        text = f"failed to {verb.get(method, method.lower())} {what}: {trim(message) or f'HTTP {status}'}"
        return error_for_status(status, text, reason)

    # ---- discovery --------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """Discovery lookup, cached per group/version and refreshed once on a miss."""
        for refresh in (False, True):
            found = self._discover(api_version, refresh).get(kind)
            if found is not None:
                return found
        raise NotFound(
            f"the API server has no kind {kind!r} in {api_version!r}",
            404,
            "NotFound",
            hint="is its CustomResourceDefinition installed?",
        )

    def _discover(self, api_version: str, refresh: bool) -> dict[str, ResourceInfo]:
        with self._discovery_lock:
            if not refresh and api_version in self._discovery:
                return self._discovery[api_version]
        group, version = split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listing = self.request("GET", path, what=f"API group {api_version}")
        except NotFound:
            listing = {"resources": []}
        kinds: dict[str, ResourceInfo] = {}
        for entry in listing.get("resources", []):
            if "/" in entry["name"]:  # subresources such as deployments/status
                continue
            kinds[entry["kind"]] = ResourceInfo(
                group, version, entry["kind"], entry["name"], bool(entry["namespaced"])
            )
        with self._discovery_lock:
            self._discovery[api_version] = kinds
        return kinds

    def forget_discovery(self) -> None:
        with self._discovery_lock:
            self._discovery.clear()

    def server_version(self) -> dict[str, Any]:
        version: dict[str, Any] = self.request("GET", "/version", what="the server version")
        return version

    # ---- objects ----------------------------------------------------------------------

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None:
        """The live object, or None when it does not exist."""
        info = self.resource(api_version, kind)
        try:
            obj: KubeObject = self.request(
                "GET", info.path(namespace, name), what=_describe(kind, namespace, name)
            )
            return obj
        except NotFound:
            return None

    def get_ref(self, ref: ObjectRef) -> KubeObject | None:
        return self.get(ref.api_version, ref.kind, ref.name, ref.namespace or None)

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[KubeObject]:
        """Every object of a kind (in `namespace`, or across the cluster)."""
        items, _ = self.list_with_version(api_version, kind, namespace, label_selector)
        return items

    def list_with_version(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> tuple[list[KubeObject], str]:
        """Like `list`, plus the list's resourceVersion to start a watch from."""
        info = self.resource(api_version, kind)
        query = {"labelSelector": label_selector} if label_selector else None
        answer = self.request(
            "GET", info.path(namespace), query=query, what=f"list of {info.plural}"
        )
        items: list[KubeObject] = answer.get("items", [])
        for item in items:  # list items omit apiVersion/kind
            item.setdefault("apiVersion", info.api_version)
            item.setdefault("kind", kind)
        return items, str(answer.get("metadata", {}).get("resourceVersion", ""))

    def apply(
        self, obj: KubeObject, field_manager: str, force: bool = True, dry_run: bool = False
    ) -> KubeObject:
        """Server-side apply of `obj` (the fields we own); returns the live object."""
        return self._apply(obj, field_manager, force, dry_run, subresource="")

    def apply_status(self, obj: KubeObject, field_manager: str) -> KubeObject:
        """Server-side apply to the status subresource."""
        return self._apply(obj, field_manager, True, False, subresource="/status")

    def _apply(
        self, obj: KubeObject, field_manager: str, force: bool, dry_run: bool, subresource: str
    ) -> KubeObject:
        ref = ObjectRef.of(obj)
        info = self.resource(ref.api_version, ref.kind)
        query = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        live: KubeObject = self.request(
            "PATCH",
            info.path(ref.namespace or None, ref.name) + subresource,
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
            what=str(ref),
        )
        return live

    def create(self, obj: KubeObject) -> KubeObject:
        ref = ObjectRef.of(obj)
        info = self.resource(ref.api_version, ref.kind)
        created: KubeObject = self.request(
            "POST", info.path(ref.namespace or None), body=obj, what=str(ref)
        )
        return created

    def replace(self, obj: KubeObject) -> KubeObject:
        """PUT (optimistic concurrency through metadata.resourceVersion)."""
        ref = ObjectRef.of(obj)
        info = self.resource(ref.api_version, ref.kind)
        replaced: KubeObject = self.request(
            "PUT", info.path(ref.namespace or None, ref.name), body=obj, what=str(ref)
        )
        return replaced

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str = "",
    ) -> KubeObject:
        info = self.resource(api_version, kind)
        patched: KubeObject = self.request(
            "PATCH",
            info.path(namespace, name) + subresource,
            body=patch,
            content_type="application/merge-patch+json",
            what=_describe(kind, namespace, name),
        )
        return patched

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete; True if a delete was issued, False if it was already gone."""
        info = self.resource(api_version, kind)
        try:
            self.request(
                "DELETE",
                info.path(namespace, name),
                body={"propagationPolicy": propagation},
                what=_describe(kind, namespace, name),
            )
        except NotFound:
            return False
        return True

    def delete_ref(self, ref: ObjectRef, propagation: str = "Background") -> bool:
        return self.delete(ref.api_version, ref.kind, ref.name, ref.namespace or None, propagation)

    # ---- watch ------------------------------------------------------------------------

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str = "",
        timeout_seconds: int = 300,
        label_selector: str | None = None,
        register_cancel: Callable[[Callable[[], None]], None] | None = None,
    ) -> Iterator[WatchEvent]:
        """Stream changes until the server closes the watch (after `timeout_seconds`).

        Raises `Unavailable` with reason "Expired" when the resourceVersion is too old,
        so the caller re-lists. `register_cancel` receives a function that ends the
        stream from another thread at once (a blocked read returns), for fast shutdown.
        """
        info = self.resource(api_version, kind)
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        if label_selector:
            query["labelSelector"] = label_selector
        response = self._send(
            "GET", info.path(namespace), None, query, "", timeout_seconds + 30, stream=True
        )
        if register_cancel is not None:
            register_cancel(response.shutdown)
        try:
            if response.status >= 400:
                raise self._error(
                    response.status, response.read(), "GET", f"watch of {info.plural}"
                )
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        code = int(obj.get("code", 500))
                        reason = "Expired" if code == 410 else str(obj.get("reason", ""))
                        raise Unavailable(
                            f"watch of {info.plural} ended: {trim(str(obj.get('message', '')))}",
                            code,
                            reason,
                        )
                    obj.setdefault("apiVersion", info.api_version)
                    obj.setdefault("kind", kind)
                    yield WatchEvent(str(event.get("type")), obj)
        except urllib3.exceptions.HTTPError as error:
            raise Unavailable(f"watch of {info.plural} broke: {trim(str(error), 200)}") from error
        finally:
            response.release_conn()

    # ---- convenience ------------------------------------------------------------------

    def token_request(
        self,
        namespace: str,
        service_account: str,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str:
        """A short-lived ServiceAccount token from the TokenRequest API."""
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = audiences
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            what=f"token for ServiceAccount '{namespace}/{service_account}'",
        )
        token: str = answer["status"]["token"]
        return token

    def self_subject_access(
        self,
        verb: str,
        group: str,
        resource: str,
        namespace: str | None = None,
        subresource: str = "",
    ) -> bool:
        """May the current identity do `verb` on `resource`? (SelfSubjectAccessReview)"""
        attributes: dict[str, str] = {"verb": verb, "group": group, "resource": resource}
        if namespace:
            attributes["namespace"] = namespace
        if subresource:
            attributes["subresource"] = subresource
        answer = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
            what="access review",
        )
        return bool(answer.get("status", {}).get("allowed"))

    def open_port_forward(self, namespace: str, pod: str, port: int) -> PodStream:
        """One TCP connection to `port` of a pod, tunnelled through the API server (the
        `pods/portforward` subresource over a websocket, as `kubectl port-forward`
        does). Used by stacks/kube/portforward.py, which serves it on a local port."""
        import kubernetes.stream

        core = kubernetes.client.CoreV1Api(self._api)
        try:
            forward = kubernetes.stream.portforward(
                core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
            )
        except kubernetes.client.exceptions.ApiException as error:
            raise self._error(
                int(error.status or 0),
                str(error.body or error.reason or "").encode(),
                "GET",
                f"port-forward to {_describe('Pod', namespace, pod)}",
            ) from None
        except Exception as error:  # websocket handshake, TLS, connection refused
            raise Unavailable(
                f"port-forward to {_describe('Pod', namespace, pod)} failed: {trim(str(error), 300)}"
            ) from None
        return PodStream(forward, port)

    def close(self) -> None:
        self._api.close()


class PodStream:
    """The pod end of one forwarded connection: a socket-like object (fileno, recv,
    sendall) plus close() that also ends the websocket."""

    def __init__(self, forward: Any, port: int) -> None:
        self._forward = forward
        self.socket = forward.socket(port)
        self.socket.setblocking(True)

    def error(self, port: int) -> str | None:
        """What the API server reported for the port (e.g. nothing listens there)."""
        answer = self._forward.error(port)
        return str(answer) if answer else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()
        with contextlib.suppress(Exception):
            self._forward.close()


def _describe(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind} '{namespace}/{name}'" if namespace else f"{kind} '{name}'"
