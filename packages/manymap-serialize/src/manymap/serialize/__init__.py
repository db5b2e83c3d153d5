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

For pools: :class:`PoolCodec` is what a pool serializes for its workers: a
task function once while it stays the same (:class:`FunctionPayloads`), sent
to each worker once under a key (:func:`must_send`, the worker's side being
:class:`FunctionCache`; both clear at :data:`FUNCTION_CACHE` entries, in
step), and a batch's arguments (:func:`encode_batch` names the task whose
argument cannot be serialized). On the worker, :func:`encode_results`
serializes a batch's outcome, failing only the tasks whose result or
exception cannot be sent back (:func:`make_shippable`).

    >>> from manymap.serialize import dumps, loads
    >>> loads(dumps(lambda x: x + 1))(41)
    42
"""

from __future__ import annotations

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import load_on_access, show_public_paths
from manymap.serialize.__about__ import __version__
from manymap.serialize._cache import FUNCTION_CACHE, FunctionCache, must_send
from manymap.serialize._codec import PoolCodec
from manymap.serialize._core import DEFAULT_OOB_MIN_SIZE, copy, dumps, dumps_oob, dumps_parts, loads
from manymap.serialize._format import BUFFER_ALIGNMENT, FORMAT_VERSION, FormatVersionError
from manymap.serialize._payloads import FunctionPayloads, encode_batch, encode_results, make_shippable

__all__ = [
    "BUFFER_ALIGNMENT",
    "DEFAULT_OOB_MIN_SIZE",
    "FORMAT_VERSION",
    "FUNCTION_CACHE",
    "CheckReport",
    "FormatVersionError",
    "FunctionCache",
    "FunctionPayloads",
    "PoolCodec",
    "SerializationError",
    "__version__",
    "check",
    "copy",
    "dumps",
    "dumps_oob",
    "dumps_parts",
    "encode_batch",
    "encode_results",
    "loads",
    "make_shippable",
    "must_send",
]


show_public_paths(globals())

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.serialize._check import CheckReport, check

# check() and CheckReport (the failure search: dataclasses, inspect) are loaded when first named.
__getattr__, __dir__ = load_on_access(
    globals(), {"CheckReport": "manymap.serialize._check", "check": "manymap.serialize._check"}
)
