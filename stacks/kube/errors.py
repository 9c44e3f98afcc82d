"""Kubernetes API errors, mapped from HTTP status to what the caller should do.

    ApiError (PlatformError)             status, reason, trimmed API message
    ├── NotFound        404              PermanentError for the request itself
    ├── Conflict        409              TransientError: re-read and retry
    ├── Invalid         400, 422         PermanentError: the object is wrong; message names the field
    ├── Forbidden       401, 403         PermanentError: credentials or RBAC
    └── Unavailable     429, 5xx, I/O    TransientError: back off and retry

Raised only by `stacks.kube.client`; bodies are trimmed and never include request data.
"""

from __future__ import annotations

from stacks.errors import PermanentError, PlatformError, TransientError


class ApiError(PlatformError):
    status: int = 0

    def __init__(self, message: str, status: int = 0, reason: str = "", hint: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.reason = reason


class NotFound(ApiError, PermanentError):
    pass


class Conflict(ApiError, TransientError):
    pass


class Invalid(ApiError, PermanentError):
    pass


class Forbidden(ApiError, PermanentError):
    pass


class Unavailable(ApiError, TransientError):
    pass


def error_for_status(status: int, message: str, reason: str = "") -> ApiError:
    if status == 404:
        return NotFound(message, status, reason)
    if status == 409:
        return Conflict(message, status, reason)
    if status in (400, 422):
        return Invalid(message, status, reason)
    if status in (401, 403):
        hint = "check the kubeconfig's credentials and the ServiceAccount's RBAC rules"
        return Forbidden(message, status, reason, hint=hint)
    return Unavailable(message, status, reason)
