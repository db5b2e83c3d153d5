"""Large buffers between processes through shared memory, not through a pipe.

A payload's out-of-band buffers (numpy arrays and other pickle-5 buffers of
at least :data:`MIN_SHARED` bytes) are written once into files of a RAM-backed
directory (``/dev/shm`` on Linux). Only their names cross the pipe. The
receiver maps each file, unlinks it at once (the mapping stays valid, the
name is gone) and rebuilds the arrays on top of the mapping: one copy on the
sending side, none on the receiving side, and nothing left on disk. The
sender unlinks what a dead receiver never took (:func:`discard`).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
import tempfile
from collections.abc import Sequence

__all__ = ["MIN_SHARED", "attach", "discard", "export"]

#: Buffers at least this large (bytes) go through shared memory.
MIN_SHARED = 256 * 1024

_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_names = itertools.count()


def export(buffers: Sequence[pickle.PickleBuffer], owner: str) -> list[str]:
    """Write each buffer into a new shared-memory file; return their names."""
    names: list[str] = []
    try:
        for buffer in buffers:
            name = f"manymap-{owner}-{os.getpid()}-{next(_names)}"
            fd = os.open(os.path.join(_DIRECTORY, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            names.append(name)
            try:
                view = buffer.raw()
                written = 0
                while written < view.nbytes:
                    written += os.write(fd, view[written:])
            finally:
                os.close(fd)
    except BaseException:
        discard(names)
        raise
    return names


def attach(names: Sequence[str]) -> list[mmap.mmap | bytearray]:
    """Map the named files (unlinking them) as buffers for ``loads(buffers=...)``."""
    buffers: list[mmap.mmap | bytearray] = []
    try:
        for name in names:
            path = os.path.join(_DIRECTORY, name)
            fd = os.open(path, os.O_RDWR)
            try:
                os.unlink(path)
                size = os.fstat(fd).st_size
                buffers.append(mmap.mmap(fd, size) if size else bytearray())
            finally:
                os.close(fd)
    except BaseException:
        discard(names)
        raise
    return buffers


def discard(names: Sequence[str]) -> None:
    """Unlink shared-memory files whose receiver never took them."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(_DIRECTORY, name))
