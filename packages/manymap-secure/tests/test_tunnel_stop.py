"""A tunnel stopped while its link half-closes must not cost the shared ssh connection.

paramiko builds a channel message under the channel's lock but sends it after
releasing that lock. When a link's pump thread sends end-of-file (its local
socket ended: which is what ``Tunnel.kill`` itself causes) while the killing
thread closes the channel, the EOF can leave after the CLOSE. OpenSSH frees a
channel once CLOSE went both ways, and a later EOF for it ("ieof packet
referred to nonexistent channel") makes it drop the whole connection: every
handle sharing it, e.g. the next ParallelPool's server and tunnel on the same
host, lost its connection (a flaky ``TestParallelPoolOverSsh`` pickling test).

The test makes the losing order certain, against the session's real sshd: it
holds the pump's EOF (once built) until the CLOSE went out and the server
answered it, and holds the close until the pump built its EOF (both waits
bounded: with the fix the pump sends no EOF after a stop, and the close goes
on after the bound).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest
from manymap_testhosts import SSHServer, wait_until
from paramiko.common import MSG_CHANNEL_CLOSE, MSG_CHANNEL_EOF

from manymap.secure import HostProfile, Pipe, Tunnel, connect

_HOLD = 3.0  # seconds each forced wait lasts at most


@pytest.fixture
def target() -> Iterator[socket.socket]:
    """A listener on 127.0.0.1 for the tunnel's channel to reach (the sshd runs on this host)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)
        yield server


def _force_eof_after_close(channel: paramiko.Channel, stopper: threading.Thread) -> Any:
    """Send the pump's EOF of ``channel`` only after the stopper's CLOSE was answered; return the undo."""
    transport = channel.get_transport()
    assert transport is not None
    send = transport._send_user_message
    close = channel.close
    eof_built = threading.Event()
    close_sent = threading.Event()

    def ordered_send(message: paramiko.Message) -> None:
        data = message.asbytes()
        ours = int.from_bytes(data[1:5], "big") == channel.remote_chanid
        if ours and data[0] == MSG_CHANNEL_EOF and threading.current_thread() is not stopper:
            eof_built.set()
            if close_sent.wait(_HOLD):
                # ... and the server's CLOSE came back: it has freed the channel.
                with contextlib.suppress(AssertionError):
                    wait_until(
                        lambda: transport._channels.get(channel.get_id()) is None, _HOLD, "the server's CLOSE"
                    )
        send(message)
        if ours and data[0] == MSG_CHANNEL_CLOSE:
            close_sent.set()

    def close_after_the_eof() -> None:
        if threading.current_thread() is stopper:
            eof_built.wait(_HOLD)
        close()

    transport._send_user_message = ordered_send  # type: ignore[method-assign]
    channel.close = close_after_the_eof  # type: ignore[method-assign]

    def undo() -> None:
        del transport._send_user_message
        del channel.close

    return undo


def test_a_tunnel_killed_as_its_link_half_closes_keeps_the_shared_connection(
    sshd: SSHServer, profile: HostProfile, target: socket.socket
) -> None:
    keeper = connect(profile)  # another user of the same ssh connection
    log_start = len(sshd.log_text())
    try:
        tunnel = Tunnel(profile, target.getsockname()[1], client="paramiko")  # the link under test
        tunnel.launch()
        try:
            ours = tunnel.connect(timeout=10)
            peer, _ = target.accept()
            try:
                links = list(tunnel._links)
                assert len(links) == 1
                undo = _force_eof_after_close(links[0].channel, threading.current_thread())
                try:
                    tunnel.kill()
                finally:
                    undo()
            finally:
                peer.close()
                ours.close()
        finally:
            tunnel.kill()
        result = Pipe(keeper, ["echo", "still-here"]).run(timeout=10)
        assert result.stdout == b"still-here\n", "the shared ssh connection survived the tunnel's end"
        assert keeper.alive
        assert "nonexistent channel" not in sshd.log_text()[log_start:]
    finally:
        keeper.close()
