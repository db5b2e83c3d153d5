"""One forwarded connection of a tunnel: a local socket and its ssh channel, pumped both ways.

Each direction has its own thread: local to remote (:meth:`Link.pump`, the
thread that was given the link) and remote to local (a thread it starts).
The last direction to end closes both ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import paramiko

__all__ = ["Link"]

_CHUNK = 65536  # bytes read from the local socket at a time
# Bytes asked of the channel at a time: more than its receive window holds, so each read takes
# all there is. paramiko's buffer deletes what a smaller read takes from its front, moving the
# rest: many small reads from a full window cost a copy of the window each.
_DRAIN = 64 * 1024 * 1024
_SEND_WAIT = 2.0  # seconds stop() waits for a send of the pump's to finish


class Link:
    """One forwarded connection: a local socket and its ssh channel, one thread per direction.

    Each direction has its own thread (:meth:`pump` runs local to remote and
    starts the other), so a direction waiting for room (the channel's send
    window, the local socket's buffer) never stops the other: one thread
    serving both would deadlock a peer that writes while the other side
    writes back (an echo), each waiting for a window the other must read to
    open. Whichever direction ends last closes both ends and calls ``ended``.
    """

    def __init__(self, sock: socket.socket, channel: paramiko.Channel) -> None:
        self.sock = sock
        self.channel = channel
        self.ended: Callable[[], object] | None = None
        # What the pump sends on the channel (data, end-of-file) and stop()'s close go in
        # turn. paramiko builds a message under the channel's lock but sends it after
        # releasing that lock: an EOF built by the pump (whose local end just ended, which
        # is what stop() itself causes) could leave after the CLOSE of a concurrent
        # close(). The ssh server frees a channel once CLOSE went both ways, and OpenSSH
        # answers a later EOF for it ("ieof packet referred to nonexistent channel") by
        # dropping the whole connection, with every other handle sharing it (paramiko
        # issues 1115, 1705).
        self._sending = threading.Lock()
        self._stopping = False
        self._lock = threading.Lock()
        self._running = 2  # directions not ended yet

    def pump(self, spawn: Callable[[Callable[[], None]], bool]) -> None:
        """Copy both ways: remote to local on a thread from ``spawn``, local to remote on this one."""
        if not spawn(self._downstream):
            self._abort()
            self._finish()
        self._upstream()

    def _upstream(self) -> None:
        """Local socket to channel, until the local end's end-of-file (then half-close the channel)."""
        sock, channel = self.sock, self.channel
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                size = sock.recv_into(buffer)
                if not size:
                    self._send(channel.shutdown_write)
                    break
                done = 0
                while done < size:
                    # paramiko takes at most a packet's worth of a memoryview without copying the rest.
                    sent = self._send(channel.send, view[done:size])
                    if not sent:
                        raise EOFError("the channel is closed")
                    done += sent
        except (OSError, EOFError, paramiko.SSHException, ValueError, KeyError):
            self._abort()  # either side went away: end both directions
        finally:
            view.release()
            self._finish()

    def _downstream(self) -> None:
        """Channel to local socket, until the channel's end-of-file (then half-close the socket)."""
        sock, channel = self.sock, self.channel
        try:
            while True:
                data = channel.recv(_DRAIN)
                if not data:
                    break
                sock.sendall(data)
            if channel.closed:
                self._abort()  # closed, not just half-closed: the local end goes too
            else:
                sock.shutdown(socket.SHUT_WR)
        except (OSError, EOFError, paramiko.SSHException, ValueError, KeyError):
            self._abort()
        finally:
            self._finish()

    def _send(self, action: Callable[..., int | None], *args: Any) -> int | None:
        """Run ``action`` (a send on the channel) unless the link is stopping; then end the pump."""
        with self._sending:
            if self._stopping:
                raise EOFError("the link is stopping")
            return action(*args)

    def _abort(self) -> None:
        """Wake both directions (without closing a descriptor the other thread may be using)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._close_channel()

    def _finish(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.close()
            if self.ended is not None:
                self.ended()

    def stop(self) -> None:
        """Wake the pump: shut the local socket down and close the channel.

        A send of the pump's under way finishes first (its message then goes out
        before the CLOSE); the pump sends nothing more. Only a send waiting
        :data:`_SEND_WAIT` seconds for window space is not waited for: it has
        built no message yet, and the close ends its wait.
        """
        sending = self._sending.acquire(timeout=_SEND_WAIT)
        self._stopping = True
        if sending:
            self._sending.release()
        self._abort()

    def close(self) -> None:
        """Close both ends; the local end always, even when the ssh connection is already dead."""
        try:
            self._close_channel()
        finally:
            self.sock.close()

    def _close_channel(self) -> None:
        # Closing a channel sends a message: on a dropped connection that raises.
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.close()
