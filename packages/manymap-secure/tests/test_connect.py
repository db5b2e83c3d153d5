"""Connections against a real sshd: sharing, host keys, logins, the agent, refused and silent servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer, unavailable, wait_until

from manymap.portpicker import pick_port, reserve
from manymap.secure import (
    AuthenticationError,
    ConnectError,
    ConnectionLostError,
    HostKeyError,
    HostProfile,
    connect,
)


def test_connect_by_alias_through_the_ssh_config(sshd: SSHServer, no_leaks: None) -> None:
    with connect(sshd.alias, ssh_config=sshd.ssh_config) as connection:
        assert connection.alive
        assert connection.profile.port == sshd.port
        assert connection.client_address[0] == "127.0.0.1"
    assert connection.closed
    assert not connection.alive
    with pytest.raises(ConnectionLostError, match="handle is closed"):
        connection.check()


def test_connect_by_spec_with_a_profile_of_keyword_arguments(sshd: SSHServer, no_leaks: None) -> None:
    profile = HostProfile(**sshd.profile_kwargs())
    with connect(profile) as connection:
        assert connection.transport.is_active()


def test_aes_gcm_first_and_no_nagle_delay(profile: HostProfile, no_leaks: None) -> None:
    with connect(profile) as connection:
        transport = connection.transport
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
        assert transport.get_security_options().ciphers[:2] == (
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
        )


def test_handles_share_one_transport_until_the_last_closes(profile: HostProfile, no_leaks: None) -> None:
    first = connect(profile)
    second = connect(profile)
    third = first.share()
    transport = first.transport
    assert second.transport is transport
    assert third.transport is transport
    first.close()
    first.close()  # idempotent
    assert second.alive
    assert transport.is_active()
    second.close()
    assert third.alive
    third.close()
    assert not transport.is_active()


def test_private_connections_are_not_shared(profile: HostProfile, no_leaks: None) -> None:
    with connect(profile) as shared, connect(profile, shared=False) as private:
        assert private.transport is not shared.transport
        transport = private.transport
        with private.share() as again:
            assert again.transport is transport
        assert transport.is_active()
    assert not transport.is_active()


def test_an_unknown_host_key_is_refused(profile: HostProfile, tmp_path: Path, no_leaks: None) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match=rf"127\.0\.0\.1:{profile.port}: unknown host key") as info:
        connect(profile.replace(known_hosts=(str(empty),)))
    assert info.value.port == profile.port
    assert empty.read_text() == ""


def test_accept_new_host_keys_records_the_key_then_checks_it(
    sshd: SSHServer, profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    known = tmp_path / "sub" / "known_hosts"
    with connect(profile.replace(known_hosts=(str(known),), accept_new_host_keys=True)):
        pass
    keytype, key = sshd.host_public.split()[:2]
    assert known.read_text() == f"[127.0.0.1]:{profile.port} {keytype} {key}\n"
    # Recorded: a strict connection with that file now succeeds.
    with connect(profile.replace(known_hosts=(str(known),), accept_new_host_keys=False), shared=False):
        pass


def test_a_changed_host_key_is_refused_even_when_accepting_new_ones(
    sshd: SSHServer, profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    impostor = Path(str(sshd.keyring.wrong_key) + ".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{profile.port} {impostor[0]} {impostor[1]}\n")
    for accept in (False, True):
        with pytest.raises(HostKeyError, match="HOST KEY CHANGED"):
            connect(profile.replace(known_hosts=(str(known),), accept_new_host_keys=accept))
    assert len(known.read_text().splitlines()) == 1


def test_a_wrong_key_is_refused(sshd: SSHServer, profile: HostProfile, no_leaks: None) -> None:
    wrong = profile.replace(identity_files=(str(sshd.keyring.wrong_key),))
    with pytest.raises(
        AuthenticationError, match=rf"127\.0\.0\.1:{profile.port}: login as .* refused"
    ) as info:
        connect(wrong)
    assert str(sshd.keyring.wrong_key) in str(info.value)


def test_a_missing_identity_file_is_an_authentication_error(
    profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    with pytest.raises(AuthenticationError, match="none of the identity files exist"):
        connect(profile.replace(identity_files=(str(tmp_path / "nope"),)))


def test_a_closed_port_is_a_clear_error(profile: HostProfile, no_leaks: None) -> None:
    port = pick_port()
    started = time.monotonic()
    with pytest.raises(ConnectError, match=rf"127\.0\.0\.1:{port}: cannot connect .*refused"):
        connect(profile.replace(port=port))
    assert time.monotonic() - started < 5


def test_a_silent_server_times_out(profile: HostProfile, no_leaks: None) -> None:
    """A port that accepts TCP but never speaks ssh: a ConnectError after connect_timeout, no hang."""
    with reserve() as reservation:
        listener = reservation.take()
    with listener:
        listener.listen(8)  # the kernel completes the handshake; nobody ever answers
        started = time.monotonic()
        with pytest.raises(ConnectError, match=rf"127\.0\.0\.1:{reservation.port}: no ssh answer within 1 s"):
            connect(profile.replace(port=reservation.port, connect_timeout=1.0))
        assert time.monotonic() - started < 10


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent (ours, stopped by pid afterwards); yields its socket path."""
    binary = shutil.which("ssh-agent")
    if binary is None:
        unavailable("no ssh-agent (openssh-client) on this machine")
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(
        [binary, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    try:
        wait_until(sock.exists, 10, "ssh-agent's socket")
        yield str(sock)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_login_with_the_ssh_agent(
    sshd: SSHServer, profile: HostProfile, agent: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    add = subprocess.run(
        [shutil.which("ssh-add") or "ssh-add", str(sshd.keyring.client_key)],
        env=dict(os.environ, SSH_AUTH_SOCK=agent),
        capture_output=True,
        timeout=30,
    )
    assert add.returncode == 0, add.stderr
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* to fall back on
    agent_only = profile.replace(identity_files=(), identities_only=False, use_agent=True)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthenticationError):
        connect(agent_only, shared=False)
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    with connect(agent_only, shared=False) as connection:
        assert connection.alive
    # IdentitiesOnly turns the agent off.
    with pytest.raises(AuthenticationError):
        connect(agent_only.replace(identities_only=True), shared=False)


def test_connections_to_different_profiles_are_separate(
    sshd: SSHServer, profile: HostProfile, no_leaks: None
) -> None:
    by_alias = connect(sshd.alias, ssh_config=sshd.ssh_config)
    other = connect(profile.replace(connect_timeout=9.0))
    try:
        assert by_alias.transport is not other.transport
        # Equal profiles reached by different names share one transport.
        with connect(profile) as same:
            assert same.transport is by_alias.transport
    finally:
        by_alias.close()
        other.close()


def test_socket_errors_are_reported_not_hung(no_leaks: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConnectError, match="refused"):
            connect(f"127.0.0.1:{port}", ssh_config=os.devnull)
