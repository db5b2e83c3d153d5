"""Out-of-band buffers: large arrays travel beside the payload (or inside it, as pieces
of their own) and load without a copy."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from manymap.serialize import (
    BUFFER_ALIGNMENT,
    DEFAULT_OOB_MIN_SIZE,
    FORMAT_VERSION,
    FormatVersionError,
    dumps,
    dumps_oob,
    dumps_parts,
    loads,
)

np = pytest.importorskip("numpy")


def _frames(buffers: list[pickle.PickleBuffer]) -> list[bytearray]:
    """What a transport delivers: each buffer's bytes, received into fresh memory."""
    return [bytearray(buffer.raw()) for buffer in buffers]


def test_dumps_oob_leaves_large_arrays_out_of_the_payload() -> None:
    array = np.arange(1_000_000, dtype=np.float64)
    payload, buffers = dumps_oob({"array": array, "small": [1, 2, 3]})
    assert len(buffers) == 1
    assert len(payload) < 1000
    with buffers[0].raw() as view:
        assert view.nbytes == array.nbytes
        assert np.shares_memory(np.frombuffer(view, dtype=np.uint8), array)  # no copy on the way out


def test_loaded_array_shares_memory_with_the_buffer_passed_in() -> None:
    array = np.arange(1_000_000, dtype=np.float64)
    payload, buffers = dumps_oob(array)
    frames = _frames(buffers)
    loaded = loads(payload, buffers=frames)
    np.testing.assert_array_equal(loaded, array)
    assert np.shares_memory(loaded, np.frombuffer(frames[0], dtype=np.uint8))
    frames[0][:8] = np.float64(-5.0).tobytes()
    assert loaded[0] == -5.0  # zero-copy: writing the buffer changes the array


def test_small_buffers_stay_in_band() -> None:
    small = np.arange(10.0)
    assert small.nbytes < DEFAULT_OOB_MIN_SIZE
    payload, buffers = dumps_oob(small)
    assert buffers == []
    np.testing.assert_array_equal(loads(payload), small)
    payload, buffers = dumps_oob(small, min_size=0)
    assert len(buffers) == 1
    np.testing.assert_array_equal(loads(payload, buffers=_frames(buffers)), small)


def test_buffer_callback_has_pickle_semantics() -> None:
    arrays = [
        np.arange(100_000.0),
        np.ones((300, 300)),
        np.asfortranarray(np.arange(200_000.0).reshape(400, 500)),
    ]
    seen: list[pickle.PickleBuffer] = []
    payload = dumps(arrays, buffer_callback=seen.append)  # returns None: every buffer out of band
    assert len(seen) == 3
    loaded = loads(payload, buffers=_frames(seen))
    for got, want in zip(loaded, arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    assert loaded[2].flags.f_contiguous


def test_buffer_callback_returning_true_keeps_the_buffer_in_band() -> None:
    array = np.arange(100_000.0)
    payload = dumps(array, buffer_callback=lambda buffer: True)
    assert payload == dumps(array)


def test_read_only_buffers_load_read_only() -> None:
    array = np.frombuffer(bytes(range(256)) * 1024, dtype=np.uint8)
    assert not array.flags.writeable
    payload, buffers = dumps_oob(array)
    loaded = loads(payload, buffers=_frames(buffers))
    assert not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def test_missing_buffers_fail_loudly() -> None:
    payload, _buffers = dumps_oob(np.arange(100_000.0))
    with pytest.raises(pickle.UnpicklingError):
        loads(payload)


def test_out_of_band_and_by_value_mix() -> None:
    scale = 2.0
    work: Any = lambda a: a * scale  # noqa: E731
    payload, buffers = dumps_oob((work, np.arange(100_000.0)))
    f, array = loads(payload, buffers=_frames(buffers))
    assert f(array)[-1] == 199_998.0


# ---------------------------------------------------------------- dumps_parts


def _received(parts: list[Any]) -> bytearray:
    """What a transport writing the pieces in turn delivers: one buffer, fresh memory."""
    return bytearray(b"".join(parts))


def test_dumps_parts_writes_large_buffers_as_pieces_of_their_own_uncopied() -> None:
    arrays = [np.arange(100_000.0), np.ones((300, 300)), np.arange(10.0)]
    parts = dumps_parts({"arrays": arrays, "text": "x"})
    big = [part for part in parts if memoryview(part).nbytes >= DEFAULT_OOB_MIN_SIZE]
    assert len(big) == 2  # the small array stays in the pickle stream
    for part, array in zip(big, arrays, strict=False):
        assert np.shares_memory(np.frombuffer(part, dtype=np.uint8), array)


def test_a_dumps_parts_payload_loads_as_views_of_the_received_memory() -> None:
    arrays = [np.arange(100_000.0), np.asfortranarray(np.arange(200_000.0).reshape(400, 500))]
    data = _received(dumps_parts(arrays))
    loaded = loads(data)
    whole = np.frombuffer(data, dtype=np.uint8)
    for got, want in zip(loaded, arrays, strict=True):
        np.testing.assert_array_equal(got, want)
        assert np.shares_memory(got, whole)
        assert got.flags.writeable
        offset = got.__array_interface__["data"][0] - whole.__array_interface__["data"][0]
        assert offset % BUFFER_ALIGNMENT == 0
    assert loaded[1].flags.f_contiguous
    assert len(data) < sum(array.nbytes for array in arrays) + 2 * BUFFER_ALIGNMENT + 1024


def test_dumps_parts_without_large_buffers_is_the_plain_payload() -> None:
    obj = {"small": np.arange(10.0), "every other": np.arange(100_000.0)[::2]}  # not contiguous: in band
    parts = dumps_parts(obj)
    assert parts == [dumps(obj)]


def test_dumps_parts_keeps_read_only_buffers_read_only() -> None:
    array = np.frombuffer(bytes(range(256)) * 1024, dtype=np.uint8)
    loaded = loads(_received(dumps_parts(array)))
    assert not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)
    assert not loads(b"".join(dumps_parts(np.arange(100_000.0)))).flags.writeable  # bytes are read-only


def test_a_dumps_parts_payload_holds_its_own_buffers() -> None:
    data = _received(dumps_parts(np.arange(100_000.0)))
    with pytest.raises(ValueError, match="holds its own"):
        loads(data, buffers=[bytearray(8)])


@pytest.mark.parametrize("cut", [8, 30, 1000, 64 * 1024])
def test_a_cut_dumps_parts_payload_fails_clearly(cut: int) -> None:
    data = _received(dumps_parts([np.arange(100_000.0), np.arange(50_000.0)]))
    with pytest.raises(pickle.UnpicklingError, match="cut or changed on the way"):
        loads(data[:-cut] if cut > 30 else data[:cut])


def test_a_dumps_parts_payload_of_another_version_names_both() -> None:
    data = _received(dumps_parts(np.arange(100_000.0)))
    data[4] = FORMAT_VERSION + 1
    with pytest.raises(FormatVersionError, match=f"format version {FORMAT_VERSION + 1}, but"):
        loads(data)
