"""Whether manymap-pools-rpc's ``ParallelPool`` is installed, and a clear error when it is not."""

from __future__ import annotations

import importlib
from types import ModuleType

from manymap.launcher import ManymapError

__all__ = ["RPC_MISSING", "RpcUnavailableError", "require_rpc", "rpc_available", "rpc_module"]

RPC_MISSING = (
    "manymap-pools-rpc provides no ParallelPool in this installation "
    "(its RPC pool and the manymap-server command are not released yet)"
)


class RpcUnavailableError(ManymapError, ImportError):
    """What needs ``manymap.pools.rpc.ParallelPool`` (RPC pools, ``serve``) cannot run here."""


def rpc_module() -> ModuleType | None:
    """``manymap.pools.rpc`` when it exports ``ParallelPool``, else ``None``."""
    try:
        module = importlib.import_module("manymap.pools.rpc")
    except ImportError:
        return None
    return module if hasattr(module, "ParallelPool") else None


def rpc_available() -> bool:
    """Whether ``manymap.pools.rpc.ParallelPool`` can be imported."""
    return rpc_module() is not None


def require_rpc(what: str) -> ModuleType:
    """``manymap.pools.rpc``, or :class:`RpcUnavailableError` saying that ``what`` needs it."""
    module = rpc_module()
    if module is None:
        raise RpcUnavailableError(f"{what} needs manymap.pools.rpc.ParallelPool: {RPC_MISSING}")
    return module
