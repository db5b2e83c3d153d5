"""A private OpenSSH sshd: its keys, its config, its process, and the client files that reach it.

:class:`Keyring` holds what a client needs: a private ed25519 client key, the
``authorized_keys`` every test sshd accepts it from, and a spare key that no
sshd accepts (for the wrong-key tests). :class:`SSHServer` is one sshd with
its own host key; :meth:`SSHServer.start` runs ``sshd -D`` (as the current
user; logins are for that user) and returns once it listens. Every client
file is written beside it: a ``known_hosts`` with the host key and an
``ssh_config`` naming the server by an alias, so both OpenSSH (``ssh -F``)
and manymap.secure (``ssh_config=``) reach it by name.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._common import (
    Unavailable,
    descendants,
    ensure_tool,
    generate_key,
    kill_pids,
    known_hosts_line,
    pids_with_environ,
    pids_with_socket,
    sshd_config_text,
    write_private,
)

__all__ = ["Keyring", "SSHServer", "write_ssh_config"]

_START_TIMEOUT = 15.0


@dataclass
class Keyring:
    """The client side keys shared by every test sshd of a test session.

    Attributes:
        directory: where the files live.
        client_key: the private key every test sshd accepts.
        client_public: its public line.
        wrong_key: a private key no test sshd accepts.
        authorized_keys: the file every test sshd reads (holds ``client_public``).
    """

    directory: Path
    client_key: Path = field(init=False)
    client_public: str = field(init=False)
    wrong_key: Path = field(init=False)
    authorized_keys: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.client_key, self.client_public = generate_key(self.directory / "client_ed25519", "manymap-test")
        self.wrong_key, _ = generate_key(self.directory / "wrong_ed25519", "manymap-test-wrong")
        self.authorized_keys = write_private(self.directory / "authorized_keys", self.client_public + "\n")


def write_ssh_config(path: Path, entries: Sequence[tuple[str, dict[str, str | int]]]) -> Path:
    """Write an ssh_config with one ``Host alias`` block per entry (options in the given order)."""
    blocks = []
    for alias, options in entries:
        lines = [f"Host {alias}"] + [f"    {key} {value}" for key, value in options.items()]
        blocks.append("\n".join(lines) + "\n")
    return write_private(path, "\n".join(blocks), 0o644)


class SSHServer:
    """One private sshd, on 127.0.0.1 or inside a network namespace.

    Args:
        directory: its own directory (created): config, host key, log, private HOME.
        keyring: the client keys it accepts.
        listen: the address it listens on.
        port: its port; 0 picks a free one on ``listen`` (retried if taken meanwhile).
        alias: its name in the written ssh_config.
        netns: run it inside this network namespace (``ip netns exec``).

    Attributes:
        host, port, user, alias: how to reach it.
        host_public: the public line of its host key.
        known_hosts: a known_hosts file holding only its host key.
        ssh_config: an ssh_config with a ``Host alias`` block for it.
        home: the private HOME of its sessions.
        token: the marker in the environment of every process started through it.
    """

    def __init__(
        self,
        directory: Path,
        keyring: Keyring,
        *,
        listen: str = "127.0.0.1",
        port: int = 0,
        alias: str = "manymap-sshd",
        netns: str | None = None,
    ) -> None:
        self.directory = directory
        self.keyring = keyring
        self.host = listen
        self.port = port
        self.alias = alias
        self.netns = netns
        self.user = getpass.getuser()
        self.token = f"{alias}-{secrets.token_hex(6)}"
        directory.mkdir(parents=True, exist_ok=True)
        self.home = directory / "home"
        self.home.mkdir(exist_ok=True)
        self.host_key, self.host_public = generate_key(directory / "ssh_host_ed25519_key", alias)
        self.config_path = directory / "sshd_config"
        self.log_path = directory / "sshd.log"
        self.known_hosts = directory / "known_hosts"
        self.ssh_config = directory / "ssh_config"
        self.process: subprocess.Popen[bytes] | None = None

    # -- what clients use ---------------------------------------------------------------

    @property
    def spec(self) -> str:
        """``user@host:port``, the host spec of this server."""
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The pid of the listening sshd process."""
        return self.process.pid if self.process is not None else None

    def client_options(self) -> dict[str, str | int]:
        """The ssh_config options of this server's ``Host`` block."""
        return {
            "HostName": self.host,
            "Port": self.port,
            "User": self.user,
            "IdentityFile": str(self.keyring.client_key),
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "ConnectTimeout": 10,
        }

    def profile_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``manymap.secure.HostProfile`` reaching this server directly."""
        return {
            "hostname": self.host,
            "port": self.port,
            "user": self.user,
            "identity_files": (str(self.keyring.client_key),),
            "identities_only": True,
            "known_hosts": (str(self.known_hosts),),
        }

    def ssh_argv(self, *command: str) -> list[str]:
        """An OpenSSH client command line running ``command`` on this server."""
        return [ensure_tool("ssh"), "-F", str(self.ssh_config), self.alias, *command]

    def log_text(self) -> str:
        """What sshd wrote to its log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- life -----------------------------------------------------------------------------

    def start(self) -> SSHServer:
        """Start sshd and return once it accepts connections.

        Raises:
            Unavailable: sshd cannot run here (missing binary, refused config).
        """
        sshd = ensure_tool("sshd")
        ip = ensure_tool("ip") if self.netns else None
        setpriv = shutil.which("setpriv")  # util-linux; without it a killed test run leaves sshd behind
        if os.geteuid() == 0:
            # The privilege separation directory; sshd refuses to start without it.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        attempts = 5 if self.port == 0 else 1
        last_error = ""
        for _ in range(attempts):
            port = self.port or _free_port(self.host)
            self._write_config(port)
            argv = [sshd, "-D", "-f", str(self.config_path.resolve()), "-E", str(self.log_path.resolve())]
            if ip is not None and self.netns is not None:
                argv = [ip, "netns", "exec", self.netns, *argv]
            if setpriv is not None:  # sshd ends with the process that started it, even a killed one
                argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
            self.log_path.write_text("")
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
            error = self._wait_listening(port)
            if error is None:
                self.port = port
                self._write_client_files()
                return self
            last_error = error
            self._reap()
            if "Address already in use" not in error:
                break
        raise Unavailable(f"sshd did not start: {last_error}")

    def _write_config(self, port: int) -> None:
        self.config_path.write_text(
            sshd_config_text(
                listen=self.host,
                port=port,
                host_key=self.host_key.resolve(),
                authorized_keys=self.keyring.authorized_keys.resolve(),
                home=self.home.resolve(),
                token=self.token,
            )
        )

    def _write_client_files(self) -> None:
        write_private(self.known_hosts, known_hosts_line(self.host, self.port, self.host_public), 0o644)
        write_ssh_config(self.ssh_config, [(self.alias, self.client_options())])

    def _wait_listening(self, port: int) -> str | None:
        """None once sshd logs that it listens; the reason when it exits first or takes too long."""
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            log = self.log_text()
            if f"Server listening on {self.host} port {port}" in log:
                return None
            if self.process.poll() is not None:
                return f"sshd exited with status {self.process.returncode}: {log.strip()[-2000:]}"
            time.sleep(0.01)
        return (
            f"sshd did not listen on {self.host}:{port} within {_START_TIMEOUT} s: {self.log_text()[-2000:]}"
        )

    def session_pids(self) -> list[int]:
        """Every process started through this sshd that is still alive (sessions, their commands)."""
        if self.process is None:
            return []
        return sorted(
            set(descendants(self.process.pid)) | set(pids_with_environ(f"MANYMAP_TESTHOSTS={self.token}"))
        )

    def kill_connection(self, client_port: int) -> list[int]:
        """SIGKILL the sshd processes serving the connection from the client's local port ``client_port``.

        This is a real server-side drop: the client's TCP connection is
        reset, as when the remote sshd or its host dies. Returns the killed pids.
        """
        if self.process is None:
            return []
        holders = pids_with_socket(descendants(self.process.pid), self.process.pid, self.port, client_port)
        kill_pids(holders, grace=0.0)
        return holders

    def stop(self) -> None:
        """Stop sshd and every process started through it (by pid); idempotent."""
        if self.process is None:
            return
        sessions = self.session_pids()
        self._reap()
        kill_pids(sessions, grace=1.0)

    def _reap(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> SSHServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f" in netns {self.netns}" if self.netns else ""
        return f"<SSHServer {self.alias} {self.spec}{where} pid={self.pid}>"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
