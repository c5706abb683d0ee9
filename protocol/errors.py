"""One error tree for the whole project; foreign errors are mapped to these at the boundary.

`LocalProtocolError` means we broke the rules (a bug or bad local input); `RemoteProtocolError`
means the peer did. `TransportError` and its children are transient: only they are retried.

Every error a server answers with has a `code` (the `error` of its body) and a `status` (HTTP).
`ERRORS` is the one registry of them, `{code: error class}`: a server answers an error with its
class's status (`status_of`), a client turns a server's refusal back into ours (`from_answer`).
"""

from __future__ import annotations

import logging
from typing import ClassVar

log = logging.getLogger(__name__)

ERRORS: dict[str, type[SyncError]] = {}  # code -> the class that declared it first


class SyncError(Exception):
    """Root of every error this project raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400  # the HTTP status a server answers it with

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            ERRORS.setdefault(cls.code, cls)


class ValidationError(SyncError):
    """Input (API body, CLI argument, config) is not acceptable; nothing was changed."""

    code = "invalid"
    status = 422


class NotFound(SyncError):
    """The thing does not exist, or is out of the caller's scope."""

    code = "not_found"
    status = 404


class Conflict(SyncError):
    """The request is well formed but cannot apply to the current state (HTTP 409)."""

    code = "conflict"
    status = 409


class AuthError(SyncError):
    """The caller is not who it claims, or may not do this."""

    code = "unauthorized"
    status = 401


class Forbidden(AuthError):
    """The caller is known but their role may not do this (HTTP 403). `role`, `needs` and
    `action` (in English words) let a page say it in the user's language."""

    code = "forbidden"
    status = 403

    def __init__(self, message: str, *, field: str | None = None, role: str | None = None,
                 needs: tuple[str, ...] = (), action: str | None = None) -> None:
        super().__init__(message, field=field)
        self.role, self.needs, self.action = role, needs, action


class ProtocolError(SyncError):
    """A sync message broke the protocol."""

    code = "protocol"


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids: corrupt, oversized or hostile."""


class TooLarge(RemoteProtocolError):
    """A message exceeds a size, count or nesting limit."""

    code = "too_large"
    status = 413


class VersionMismatch(ProtocolError):
    """The peer speaks a protocol version we cannot accept; upgrade before syncing."""

    code = "version"
    status = 426


class TransportError(SyncError):
    """The link failed: retry later, the operation is idempotent."""

    code = "transport"


class ConnectTimeout(TransportError):
    """No connection could be made in time."""


class ReadTimeout(TransportError):
    """The peer did not answer in time."""


class NetworkError(TransportError):
    """The connection broke or could not be made."""


class ServerBusy(TransportError):
    """The hub answered 5xx or 429: retry later (not before `retry_after_s`, when it said)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreError(SyncError):
    """The local database failed or is corrupt."""

    code = "store"


class SchemaTooNew(StoreError):
    """The database was written by a newer release than this program; nothing was written."""

    code = "schema_too_new"


class RateLimited(SyncError):
    """Too many requests from one caller: retry after `retry_after_s` (HTTP 429)."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(RateLimited):
    """The server is overloaded: retry after `retry_after_s` (HTTP 503)."""

    code = "unavailable"
    status = 503


class UnsupportedEncoding(SyncError):
    """A request body in a content encoding we do not use (HTTP 415)."""

    code = "unsupported_encoding"
    status = 415


class DiskFull(StoreError):
    """Too little free disk to take new data safely; nothing was written (HTTP 507)."""

    code = "disk_full"
    status = 507

    def __init__(self, message: str, *, free_mb: int, floor_mb: int) -> None:
        super().__init__(message)
        self.free_mb = free_mb
        self.floor_mb = floor_mb


ERRORS[SyncError.code] = SyncError


def status_of(exc: SyncError) -> int:
    """The HTTP status a server answers `exc` with."""
    return exc.status


def from_answer(status: int, code: str, message: str,
                retry_after_s: float | None = None) -> SyncError:
    """What a client raises when a server refused its request with `status` and a body naming
    `code`. The registry says which of our errors it was: by the code, or by the status alone
    when the body names none of ours (a proxy's page). A busy server is transient (`ServerBusy`,
    retried); a refused credential, a missing thing, a conflict and a version mismatch are
    themselves; anything else means the server found the request wrong, and resending it as it
    is will not help."""
    kind = ERRORS.get(code)
    if kind is None or kind is SyncError:
        kind = next((k for k in ERRORS.values() if k.status == status), None)
    if status >= 500 or (kind is not None and issubclass(kind, RateLimited)):
        return ServerBusy(f"hub answered {status}: {message}", retry_after_s)
    if kind in (VersionMismatch, NotFound, Conflict):
        return kind(message)
    if kind is not None and issubclass(kind, AuthError):
        return AuthError(f"hub refused this node's credential: {message}")
    return RemoteProtocolError(f"hub refused the request ({status} {code}): {message}")
