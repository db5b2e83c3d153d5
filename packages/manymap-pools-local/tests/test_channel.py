"""A worker's channel: whole messages, however the kernel splits them, and a clear end."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from manymap.pools.local._channel import PIPE_SIZE, channel_pair


def test_messages_of_every_size_arrive_whole_and_in_order() -> None:
    left, right = channel_pair()
    sizes = [0, 1, 7, 64 * 1024, 64 * 1024 + 1, 5 * 1024 * 1024]  # the large ones exceed the pipe buffer
    messages = [os.urandom(size) for size in sizes]
    writer = threading.Thread(target=lambda: [left.send_bytes(m) for m in messages])
    writer.start()
    try:
        for message in messages:
            assert right.poll(10)
            assert bytes(right.recv_bytes()) == message
        assert not right.poll(0)  # nothing read past the last message
    finally:
        writer.join()
        left.close()
        right.close()


def test_a_closed_end_reads_as_the_end_and_a_half_message_says_so() -> None:
    left, right = channel_pair()
    left.send_bytes(b"last")
    left.close()
    assert right.recv_bytes() == b"last"
    assert right.poll(0)  # the end of the channel is readable
    with pytest.raises(EOFError, match="closed"):
        right.recv_bytes()
    right.close()
    assert right.closed
    with pytest.raises(OSError, match="closed"):
        right.fileno()

    left, right = channel_pair()
    os.write(left.fds()[1], (100).to_bytes(8, "big") + b"only part")  # a writer that died mid-message
    left.close()
    with pytest.raises(EOFError, match="in the middle of a message"):
        right.recv_bytes()
    right.close()


def test_writing_to_a_closed_peer_is_an_os_error() -> None:
    left, right = channel_pair()
    right.close()
    with pytest.raises(OSError):
        left.send_bytes(b"x" * (1024 * 1024))
    left.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_GETPIPE_SZ is Linux's")
def test_a_pipe_is_enlarged_by_its_first_large_message_only() -> None:
    import fcntl

    left, right = channel_pair()
    try:
        pipe = left.fds()[1]  # the pipe left writes to
        default = fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ)
        assert default < PIPE_SIZE  # made at the system's size: no fcntl for small messages
        left.send_bytes(b"x" * (32 * 1024))  # a small message: the pipe stays as it was
        assert bytes(right.recv_bytes()) == b"x" * (32 * 1024)
        assert fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) == default
        message = os.urandom(PIPE_SIZE // 2)  # larger than the default, whole in the enlarged pipe
        left.send_bytes(message)  # no reader yet: it blocks unless the pipe holds it all
        assert fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ) >= PIPE_SIZE
        assert bytes(right.recv_bytes()) == message
        assert fcntl.fcntl(right.fds()[1], fcntl.F_GETPIPE_SZ) == default  # the other way: untouched
    finally:
        left.close()
        right.close()
