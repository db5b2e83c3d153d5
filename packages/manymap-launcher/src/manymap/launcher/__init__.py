"""manymap.launcher: the contracts every manymap package follows (placeholder, being written)."""

from __future__ import annotations

from manymap.launcher.__about__ import __version__
from manymap.launcher._errors import (
    AuthenticationError,
    ConnectionLostError,
    HostKeyError,
    ManymapError,
    PoolClosedError,
    RemoteTraceback,
    ResultTimeoutError,
    SerializationError,
    TaskTimeoutError,
    TunnelError,
    WorkerLostError,
)

__all__ = [
    "AuthenticationError",
    "ConnectionLostError",
    "HostKeyError",
    "ManymapError",
    "PoolClosedError",
    "RemoteTraceback",
    "ResultTimeoutError",
    "SerializationError",
    "TaskTimeoutError",
    "TunnelError",
    "WorkerLostError",
    "__version__",
]
