"""One error tree for the whole project; foreign errors are mapped to these at the boundary.

`LocalProtocolError` means we broke the rules (a bug or bad local input); `RemoteProtocolError`
means the peer did. `TransportError` and its children are transient: only they are retried.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class SyncError(Exception):
    """Root of every error this project raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(SyncError):
    """Input (API body, CLI argument, config) is not acceptable; nothing was changed."""

    code = "invalid"


class NotFound(SyncError):
    """The thing does not exist, or is out of the caller's scope."""

    code = "not_found"


class Conflict(SyncError):
    """The request is well formed but cannot apply to the current state (HTTP 409)."""

    code = "conflict"


class AuthError(SyncError):
    """The caller is not who it claims, or may not do this."""

    code = "unauthorized"


class Forbidden(AuthError):
    """The caller is known but their role may not do this (HTTP 403). `role`, `needs` and
    `action` (in English words) let a page say it in the user's language."""

    code = "forbidden"

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


class VersionMismatch(ProtocolError):
    """The peer speaks a protocol version we cannot accept; upgrade before syncing."""

    code = "version"


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


class DiskFull(StoreError):
    """Too little free disk to take new data safely; nothing was written (HTTP 507)."""

    code = "disk_full"

    def __init__(self, message: str, *, free_mb: int, floor_mb: int) -> None:
        super().__init__(message)
        self.free_mb = free_mb
        self.floor_mb = floor_mb
