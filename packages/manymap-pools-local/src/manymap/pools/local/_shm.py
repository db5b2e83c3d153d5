"""Large buffers between processes through shared memory, not through a pipe.

A payload's out-of-band buffers (numpy arrays and other pickle-5 buffers of
at least :data:`MIN_SHARED` bytes) are written once into files of a RAM-backed
directory (``/dev/shm`` on Linux). Only their names cross the pipe. The
receiver maps each file, unlinks it at once (the mapping stays valid, the
name is gone) and rebuilds the arrays on top of the mapping: one copy on the
sending side, none on the receiving side, and nothing left on disk.

The process that owns the pool owns every file, whoever writes it. Names are
``manymap-<owner pid>-<pool>-<batch>-<a|r><n>``: the pool picks the prefix
of a batch's argument files and of its result files before the batch is
sent, so that when a worker dies, even halfway through writing its results,
the pool unlinks what that batch left (:func:`discard_prefix`); a pool that
stops unlinks everything under its own prefix, unless every worker exited on
its own with nothing to do (then each file was unlinked by its reader, and
the directory is not read again). If the owner itself is
killed, nobody is left to clean up: every pool sweeps, once it is first idle
after it starts (not while its first workers start), the files of owners that
no longer exist (:func:`sweep`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from collections.abc import Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    import mmap

__all__ = ["MIN_SHARED", "PREFIX", "attach", "discard", "discard_prefix", "export", "owned_by", "sweep"]

#: Buffers at least this large (bytes) go through shared memory.
MIN_SHARED = 256 * 1024

#: Every shared-memory file of manymap starts with this.
PREFIX = "manymap-"


@functools.cache
def _directory() -> str:
    """Where the files go: ``/dev/shm``, or the temporary directory where there is none."""
    if os.path.isdir("/dev/shm"):
        return "/dev/shm"
    import tempfile  # (it loads random: only on a host without /dev/shm)

    return tempfile.gettempdir()


def owned_by(pid: int) -> str:
    """The name prefix of the files owned by the process ``pid``."""
    return f"{PREFIX}{pid}-"


def export(buffers: Sequence[pickle.PickleBuffer], prefix: str) -> list[str]:
    """Write each buffer into a new shared-memory file named ``prefix<n>``; return the names."""
    names: list[str] = []
    try:
        for number, buffer in enumerate(buffers):
            name = f"{prefix}{number}"
            fd = os.open(os.path.join(_directory(), name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
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
    import mmap  # loaded by the first large buffer, not by the package (import time)

    buffers: list[mmap.mmap | bytearray] = []
    try:
        for name in names:
            path = os.path.join(_directory(), name)
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
            os.unlink(os.path.join(_directory(), name))


def discard_prefix(*prefixes: str) -> None:
    """Unlink every shared-memory file whose name starts with one of ``prefixes``."""
    discard([name for name in _listing() if name.startswith(prefixes)])


def sweep() -> None:
    """Unlink the shared-memory files of owners that no longer exist."""
    dead: dict[int, bool] = {}
    for name in _listing():
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if not owner.isdigit():
            continue
        pid = int(owner)
        if pid not in dead:
            dead[pid] = not _alive(pid)
        if dead[pid]:
            with contextlib.suppress(OSError):  # another user's file: not ours to remove
                os.unlink(os.path.join(_directory(), name))


def _listing() -> list[str]:
    try:
        return [name for name in os.listdir(_directory()) if name.startswith(PREFIX)]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True
