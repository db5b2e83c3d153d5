"""manymap.serialize: what crosses a process or host boundary, and how.

Data goes through the stdlib pickle (protocol 5, C fast path, out-of-band
buffers for large arrays). Only what pickle cannot ship by reference to the
far side goes by value through dill: lambdas, closures, nested functions,
functions and classes defined in ``__main__`` or an interactive session, or
whose module attribute of their qualified name is not the same object; such a
function defined in an importable module uses that module's own globals on
the far side, which imports it. State bound to this process (open files,
locks, sockets, threads, process and pipe handles, memory maps, database
connections) is refused with ``SerializationError``; the standard streams go
by reference to the far side's own. Every payload starts with a header that
carries the format version, so a peer with another version fails loudly
instead of misreading it. Importing this package
changes no global pickle, copyreg or dill state, and does not import dill.

For pools: :class:`FunctionPayloads` serializes a task function once while it
stays the same, :func:`encode_batch` names the task whose argument cannot be
serialized, and :func:`make_shippable` fails the tasks whose result or
exception cannot be sent back.

    >>> from manymap.serialize import dumps, loads
    >>> loads(dumps(lambda x: x + 1))(41)
    42
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from manymap.launcher import SerializationError, show_public_paths
from manymap.serialize import _deferred
from manymap.serialize.__about__ import __version__
from manymap.serialize._core import DEFAULT_OOB_MIN_SIZE, copy, dumps, dumps_oob, loads
from manymap.serialize._format import FORMAT_VERSION, FormatVersionError
from manymap.serialize._payloads import FunctionPayloads, encode_batch, make_shippable

__all__ = [
    "DEFAULT_OOB_MIN_SIZE",
    "FORMAT_VERSION",
    "CheckReport",
    "FormatVersionError",
    "FunctionPayloads",
    "SerializationError",
    "__version__",
    "check",
    "copy",
    "dumps",
    "dumps_oob",
    "encode_batch",
    "loads",
    "make_shippable",
]


show_public_paths(globals())

if TYPE_CHECKING:
    from manymap.serialize._check import CheckReport, check


def __getattr__(name: str) -> Any:
    # check() and CheckReport are loaded when first used (import time: _deferred.py).
    if name in _deferred.LAZY_NAMES:
        value = _deferred.lazy_name(name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
