"""Large payloads put on the cluster once per map, not once per task.

Two things can be large and the same for many tasks of a map: the task
function (a closure over a big array, a ``functools.partial`` holding a
model) and an argument every task gets (``pool.map(f, xs, repeat(table))``).
Sent with each engine task, they would cross from the client to the
scheduler and on to a worker once per batch (the function: once per worker).

How data flows:

1. :func:`encode_batches` (the caller's thread, as the batches are cut)
   serializes each batch with pickle 5's out-of-band buffers of
   :data:`SHARE_MIN_SIZE` bytes or more (a NumPy array, a
   ``pickle.PickleBuffer``) taken out of the payload. A buffer found in more
   than one batch of the call, or already on the cluster, is shared: it is
   named by a hash of its content and the batch keeps only a reference to
   it (a :class:`SharedBatch`); a batch whose big buffers are its own alone
   is serialized again with them in band.
2. :class:`SharedData` (the manager thread, as batches are submitted) puts
   each shared buffer, and each task function of that size, on the cluster
   once: a Dask task of its own that only returns the bytes, keyed by their
   hash. The batches' engine tasks take it as a dependency: Dask fetches it
   to a worker once (from the worker that holds it, not from the client),
   and a worker that loses it gets it again the same way, recomputed from
   the scheduler's copy if every holder died. Submitting it is a message to
   the scheduler, like any ``submit``: nothing waits.
3. The worker (``_worker.run_batch``) loads the batch with the shared
   buffers given back in order (each batch gets its own writable copy, as
   an in-band buffer would be), and caches the function per pool as before.

The pool keeps the newest :data:`_KEEP` shared payloads on the cluster;
older ones are released (Dask keeps one while a task that needs it waits).
"""

from __future__ import annotations

import itertools
import pickle
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from manymap.launcher.lowlevel import Batch
from manymap.serialize import dumps, dumps_oob, encode_batch

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SHARE_MIN_SIZE", "SharedBatch", "SharedData", "encode_batches"]

#: Payloads (task functions, out-of-band argument buffers) of this many bytes
#: or more go to the cluster once, as a Dask task of their own.
SHARE_MIN_SIZE = 256 * 1024
_KEEP = 32  # shared payloads a pool keeps on the cluster


class SharedBatch:
    """A batch's payload that refers to shared buffers: ``data`` (the
    serialized batch without them) and ``buffers`` (``(digest, buffer)``
    in the order the batch's pickle refers to them)."""

    __slots__ = ("buffers", "data")

    def __init__(self, data: bytes, buffers: tuple[tuple[str, pickle.PickleBuffer], ...]) -> None:
        self.data = data
        self.buffers = buffers


def digest(data: Any) -> str:
    """The name of ``data`` (any contiguous buffer) on the cluster: a hash of its content."""
    import hashlib  # by the first large payload, not by the package (import time)

    return hashlib.blake2b(data, digest_size=16).hexdigest()


def encode_batches(
    batches: Sequence[Batch],
    kwargs: Mapping[str, Any],
    star: bool,
    known: Callable[[str], bool],
    min_size: int = SHARE_MIN_SIZE,
) -> None:
    """Set each batch's payload: plain bytes, or a :class:`SharedBatch` (see the
    module's text). ``known(digest)``: whether that buffer is on the cluster already."""
    encoded: list[tuple[bytes, list[pickle.PickleBuffer]]] = []
    seen: dict[tuple[int, int], int] = {}  # (address, size) of a big buffer -> batches holding it
    for batch in batches:
        data, buffers = encode_batch(_oob_encoder(min_size), kwargs, batch.items, batch.indices[0], star)
        for where in {_where(buffer) for buffer in buffers}:
            seen[where] = seen.get(where, 0) + 1
        encoded.append((data, buffers))
    digests: dict[tuple[int, int], str] = {}  # each buffer hashed once per call (all alive meanwhile)
    for batch, (data, buffers) in zip(batches, encoded, strict=True):
        if not buffers:
            batch.payload = data
            continue
        named = []
        for buffer in buffers:
            where = _where(buffer)
            name = digests.get(where)
            if name is None:
                name = digests[where] = digest(buffer.raw())
            named.append((name, buffer))
        if all(seen[_where(buffer)] > 1 or known(name) for name, buffer in named):
            batch.payload = SharedBatch(data, tuple(named))
        else:  # big buffers of its own: they travel with it
            batch.payload = encode_batch(_dumps, kwargs, batch.items, batch.indices[0], star)


class SharedData:
    """The shared payloads of one pool on the cluster: ``future(name, data)``
    puts ``data`` there once (a Dask task keyed by ``name``) and returns its
    future; the newest :data:`_KEEP` are kept."""

    def __init__(self, pool_id: str) -> None:
        self._prefix = f"manymap-shared-{pool_id[:8]}-"
        self._futures: OrderedDict[str, Any] = OrderedDict()
        self._serials = itertools.count()

    def __contains__(self, name: object) -> bool:
        return name in self._futures

    def future(self, client: Any, name: str, data: Any) -> Any:
        """The future of the payload ``name``, submitted with ``data`` (bytes, or a
        buffer copied to bytes once) the first time (manager thread, non-blocking)."""
        future = self._futures.get(name)
        if future is not None and future.status in ("pending", "finished"):
            self._futures.move_to_end(name)
            return future
        from manymap.pools.dask._worker import shared

        future = client.submit(
            shared,
            data if isinstance(data, bytes) else bytes(data),
            key=f"{self._prefix}{name}-{next(self._serials)}",  # a failed one is never reused
            pure=False,
            retries=0,
        )
        self._futures[name] = future
        while len(self._futures) > _KEEP:
            self._futures.popitem(last=False)  # released: Dask keeps it while a task needs it
        return future

    def clear(self) -> None:
        """Release every shared payload (the pool closes)."""
        self._futures.clear()


def _where(buffer: pickle.PickleBuffer) -> tuple[int, int]:
    """Which object a buffer's bytes belong to, and their size: the same for the
    same array in every batch of a call (everything stays alive meanwhile)."""
    with memoryview(buffer) as view:
        return id(view.obj), view.nbytes


def _oob_encoder(min_size: int) -> Callable[[Any, str], tuple[bytes, list[pickle.PickleBuffer]]]:
    def encode(obj: Any, name: str) -> tuple[bytes, list[pickle.PickleBuffer]]:
        return dumps_oob(obj, min_size=min_size, name=name)

    return encode


def _dumps(obj: Any, name: str) -> bytes:
    return dumps(obj, name=name)
