"""numpy arrays through a ParallelPool: inside the frames, uncopied on the worker's
side, loaded as views of the frame that brought them (``manymap.serialize.dumps_parts``).

Real pools: the local forked server, and a server over the ssh tunnel of the
session's sshd. What a user must be able to count on: every array comes back
equal, with its dtype, shape, memory order and writability; arrays are
aligned; and an array the caller changes after submitting a map is seen by
the tasks as it was at the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rpc_helpers import ssh_pool

from manymap.pools.rpc import ParallelPool

np = pytest.importorskip("numpy")

WAIT = 60.0


def tasks() -> tuple[Callable[[Any], Any], Callable[[Any], tuple[Any, ...]], Callable[[int], Any]]:
    """The tasks, nested so that they go by value (a remote server cannot import this
    module), naming no global of it: numpy is imported in the task."""

    def identity(value: Any) -> Any:
        return value

    def describe(array: Any) -> tuple[Any, ...]:
        """What the worker sees of an array: its layout, flags and a checksum."""
        import numpy

        total = float(numpy.asarray(array, dtype=numpy.float64).sum()) if array.dtype.kind in "biuf" else None
        flags = array.flags
        return (array.dtype.str, array.shape, flags.c_contiguous, flags.f_contiguous, flags.aligned, total)

    def filled(n: int) -> Any:
        import numpy

        return numpy.full(100_000, float(n))

    return identity, describe, filled


def arrays() -> list[Any]:
    rng = np.random.default_rng(7)
    return [
        rng.random(1 << 20),  # 8 MB: a piece of the frame
        np.asfortranarray(rng.random((600, 500))),  # Fortran order, 2.4 MB
        rng.integers(0, 1 << 30, size=300_000, dtype=np.int32),
        rng.random((1000, 100)).astype(np.complex128),  # 16-byte items
        np.arange(10.0),  # small: in the pickle stream
        rng.random(200_000)[::2],  # not contiguous: in the pickle stream
        np.zeros((0, 3)),
        np.array(3.5),
        np.zeros(20_000, dtype=[("x", "<f8"), ("n", "<i4")]),  # structured
    ]


@pytest.fixture(params=["local", "ssh"])
def pool(request: pytest.FixtureRequest) -> Iterator[ParallelPool]:
    made = ParallelPool(2) if request.param == "local" else ssh_pool(request.getfixturevalue("sshd"))
    try:
        yield made
    finally:
        made.terminate()
        made.join()


def test_every_array_comes_back_as_it_went(pool: ParallelPool) -> None:
    identity, _, _ = tasks()
    sent = arrays()
    with pool:
        back = pool.map(identity, sent, chunksize=3)
    assert len(back) == len(sent)
    for got, want in zip(back, sent, strict=True):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable
        assert got.flags.aligned
        if want.ndim == 2 and want.size:
            assert got.flags.f_contiguous == want.flags.f_contiguous


def test_the_tasks_see_the_arrays_whole_and_aligned(pool: ParallelPool) -> None:
    _, describe, _ = tasks()
    sent = arrays()
    with pool:
        seen = pool.map(describe, sent, chunksize=2)
    for (dtype, shape, c_order, f_order, aligned, total), want in zip(seen, sent, strict=True):
        assert (dtype, shape) == (want.dtype.str, want.shape)
        assert aligned
        if want.flags.c_contiguous or want.flags.f_contiguous:
            assert (c_order, f_order) == (want.flags.c_contiguous, want.flags.f_contiguous)
        if total is not None:
            assert total == pytest.approx(float(np.asarray(want, dtype=np.float64).sum()))


def test_read_only_arrays_stay_read_only_both_ways(pool: ParallelPool) -> None:
    frozen = np.arange(200_000.0)
    frozen.flags.writeable = False
    with pool:
        writable_there, back = pool.apply(lambda a: (bool(a.flags.writeable), a), (frozen,))
    assert not writable_there
    np.testing.assert_array_equal(back, frozen)


def test_an_array_changed_after_the_call_is_seen_as_it_was(pool: ParallelPool) -> None:
    """The pool copies the arguments' arrays as it encodes a batch: batches that wait
    for a worker while the caller goes on still carry what was passed."""
    with pool:
        sent = [np.full(1 << 18, float(i)) for i in range(12)]
        pending = pool.map_async(lambda a: float(a.min()), sent, chunksize=1)
        for array in sent:
            array[:] = -1.0
        assert pending.get(WAIT) == [float(i) for i in range(12)]


def test_results_are_independent_arrays(pool: ParallelPool) -> None:
    """Results of one batch share the frame they came in, never each other's memory."""
    with pool:
        first, second = pool.map(tasks()[2], [1, 2], chunksize=2)
    first[:] = 0.0
    assert float(second.min()) == 2.0
    assert not np.shares_memory(first, second)
