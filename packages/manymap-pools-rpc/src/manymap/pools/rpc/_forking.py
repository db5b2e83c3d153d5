"""What a process forked without ``exec`` does first: hold nothing it should not.

The local ``manymap-server`` (``_fork_launcher.py``), its worker template and
the ppft workers forked from the template (``_template.py``) are forks of
a process that holds other things: the pool's own connections, other pools'
pipes and sockets, the user's files, Python signal handlers, objects that
still wait for the garbage collector. :func:`isolate` closes every
descriptor but those it is told to keep (``/dev/null`` on 0 and 1, so that
a late ``print`` writes nowhere rather than into a socket), and
:func:`fresh_start` freezes what the garbage collector found (so that no
finalizer of the parent's objects runs here and closes a descriptor number
reused meanwhile) and puts Python's signal handlers back to the defaults.

A forked child never returns into its parent's code: it ends with
``os._exit`` (no ``atexit`` handler, no finalizer of the parent's runs).
Its parent, once it has told it to stop, need not wait while the system tears
the child's memory down: :func:`reap_later` reaps it from a thread.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import os
import selectors
import signal
import socket
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MAXFD", "available", "fresh_start", "isolate", "reap_later"]

MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096

# The C module behind ``signal``: its functions skip the enum conversions that
# ``signal.getsignal``/``signal.signal`` make, a sixth of a millisecond over the
# 60-odd signals that every forked server, template and worker looks at.
_raw_signal: Any = sys.modules.get("_signal", signal)


def available() -> bool:
    """Whether this platform can fork warm processes and watch them (Linux: fork, pidfds, SCM_RIGHTS)."""
    return hasattr(os, "fork") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


def fresh_start() -> None:
    """In a forked child: freeze the parent's objects for the garbage collector, and put
    back every signal the parent handled in Python (and the ones Python ignores) to default."""
    gc.freeze()
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in _raw_signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE):
            continue  # SIGPIPE stays ignored, as in any Python process: EPIPE is an error here
        with contextlib.suppress(OSError, ValueError, TypeError):
            if _raw_signal.getsignal(sig) not in (_raw_signal.SIG_DFL, None):
                _raw_signal.signal(sig, _raw_signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        signal.pthread_sigmask(signal.SIG_SETMASK, [])


def isolate(keep: set[int], *, stderr: bool = True) -> None:
    """Close every descriptor but ``keep``; ``/dev/null`` on 0 and 1 (and 2 unless ``stderr``)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep and (fd < 2 or not stderr):
            os.dup2(devnull, fd)
    kept = sorted({fd for fd in keep if fd > 2} | ({2} if stderr else set()))
    low = 3
    for fd in kept:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, MAXFD)


def reap_later(pid: int, pidfd: int, grace: float) -> None:
    """Reap the child ``pid`` (``pidfd``: its pidfd, closed after) once it has exited,
    in a thread of its own; SIGKILL it if it takes over ``grace`` seconds.

    A bare thread: threading's ``start()`` waits until the new thread runs, which on
    a busy machine costs the caller as much as the wait it saves.
    """
    _thread.start_new_thread(_reap, (pid, pidfd, grace))


def _reap(pid: int, pidfd: int, grace: float) -> None:
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            if not selector.select(grace):
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
