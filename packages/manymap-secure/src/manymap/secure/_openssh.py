"""The OpenSSH client as a tunnel's bulk transport: a local forward to a private unix socket.

paramiko moves every byte of a channel through Python: the cipher is
OpenSSL's, but packets, windows and the copies between them cost this
process (and its GIL) about twice the CPU the OpenSSH client spends on the
same data (``tools/bench/bench_ssh.py``). Where the machine has the ``ssh``
client and ``setpriv``, a :class:`~manymap.secure.Tunnel` also runs one
``ssh`` client as a control master, and once the target's port is known has
it forward a private unix socket there (``ssh -O forward -L SOCKET:HOST:PORT``
through the master's control socket, a few milliseconds);
:meth:`~manymap.secure.Tunnel.connect` hands out connections to that
socket: the bytes never enter Python. So the client's login (about 150 ms)
can run while the far side still starts the server the tunnel leads to.

The client holds one session open beside the forward, the ``sftp``
subsystem (which :class:`~manymap.secure.Copier` needs anyway), fed by a pipe
of ours that we never write to. Without a session (``ssh -N``) sshd never
turns Nagle's algorithm off on the connection, and a reply's last small ssh
packet then waited for the client's delayed acknowledgement: a map of small
batches took 60 ms where it takes 18. The session also ends when this
process does (its end of the pipe closes), and the client with it.

Nothing about trust is left to the client's own configuration:

- ``-F none``: no ssh_config is read; every option comes from the profile.
- The host key is the one the tunnel's paramiko connection verified (by the
  profile's known_hosts and policy), written to a known_hosts file of its
  own under an alias, with ``StrictHostKeyChecking=yes``: a server showing
  any other key is refused.
- ``BatchMode=yes``: it never prompts (for a passphrase or a password), so
  it never waits on a terminal. It offers the profile's identity files, and
  the agent only where the profile does.
- The forward's socket and the master's control socket lie in a directory
  only this user can enter, made by this process, which removes it when the
  forward stops; ssh binds the forward's with mask 0177. Whoever connects
  must still prove the server's secret.

Its life: :meth:`OpenSSHForward.start` runs on the tunnel's watcher thread
and starts the client through ``setpriv --pdeathsig KILL``, so the kernel
kills it when that thread ends: when the tunnel stops, and when this process
dies however it dies. It runs in a session of its own (a Ctrl-C at the
terminal is ours to handle). Its stderr is a pipe only it holds: the end of
that pipe says the client is gone, and its last lines say why. It says it is
ready through ``LocalCommand``, which OpenSSH runs once it is logged in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import deque
from pathlib import Path

from ._hosts import HostProfile

__all__ = ["OpenSSHForward", "unusable_reason"]

_ALIAS = "manymap-verified-host"  # the name the verified key is filed under
_READY = b"manymap-forward-ready"
_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"  # first; the client's own order follows
_STOP_WAIT = 5.0  # seconds to wait for the client after SIGKILL


def unusable_reason(profile: HostProfile) -> str | None:
    """Why the OpenSSH client cannot carry this profile's tunnel, or ``None`` when it can."""
    if profile.jump is not None:
        return "the host is reached through a jump host"
    if shutil.which("ssh") is None:
        return "no ssh client on PATH"
    if shutil.which("setpriv") is None:
        return "no setpriv on PATH, to tie the ssh client's life to this process"
    return None


class OpenSSHForward:
    """One ``ssh`` control master and the forward it is asked for, started and read by
    its tunnel's watcher.

    ``settled`` is set once the client is logged in (``ready``) or has failed
    (``failure`` says why); the watcher feeds it the client's output
    (:meth:`read`) and stops it (:meth:`stop`). :meth:`forward` asks it for
    the forward, once.
    """

    def __init__(self, profile: HostProfile, host_key: str) -> None:
        self.profile = profile
        self.host_key = host_key  # "<type> <base64>", as the paramiko connection verified it
        self.target: tuple[str, int] | None = None  # what the forward leads to, once asked
        self._forwarding = threading.Lock()
        self.directory: Path | None = None
        self.socket_path: Path | None = None
        self.control_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.settled = threading.Event()
        self.ready = False
        self.failure: str | None = None
        self.refused: str | None = None  # the client's last "open failed" line: the target refused
        self._stderr: deque[str] = deque(maxlen=8)
        self._partial = {"out": b"", "err": b""}

    def argv(self) -> list[str]:
        """The client's command line: every option from the profile, none from a config file."""
        profile = self.profile
        assert self.directory is not None
        assert self.control_path is not None
        agent = profile.use_agent and not profile.identities_only
        options = {
            "BatchMode": "yes",
            "HostKeyAlias": _ALIAS,
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": str(self.directory / "known_hosts"),
            "GlobalKnownHostsFile": "/dev/null",
            "UpdateHostKeys": "no",
            "CheckHostIP": "no",
            "User": profile.user,
            "Port": str(profile.port),
            "IdentitiesOnly": "yes" if profile.identities_only else "no",
            "IdentityAgent": "SSH_AUTH_SOCK" if agent else "none",
            "Ciphers": _CIPHERS,
            "ConnectTimeout": str(max(1, round(profile.connect_timeout))),
            "ServerAliveInterval": str(round(profile.keepalive_interval)),
            "ServerAliveCountMax": str(profile.keepalive_count_max),
            "StreamLocalBindMask": "0177",
            "ControlMaster": "yes",
            "ControlPath": str(self.control_path),
            "PermitLocalCommand": "yes",
            "LocalCommand": f"echo {_READY.decode()}",
            "LogLevel": "INFO",  # a refused target's "open failed" line, and nothing per connection
        }
        argv = ["setpriv", "--pdeathsig", "KILL", "--", "ssh", "-F", "none", "-T", "-s"]  # -s: a subsystem
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        for identity in profile.identity_files:
            argv += ["-i", str(Path(identity).expanduser())]
        argv += ["--", profile.hostname, "sftp"]
        return argv

    def forward(self, host: str, port: int, timeout: float) -> None:
        """Have the logged-in client forward the socket to ``host:port`` (once: the
        same target again is a no-op).

        Raises:
            OSError: the client refused or did not answer within ``timeout`` seconds.
        """
        with self._forwarding:
            if self.target == (host, port):
                return
            if self.directory is None or self.socket_path is None or self.control_path is None:
                raise ConnectionRefusedError("the ssh client is stopped")
            if self.target is not None:
                raise ConnectionRefusedError(f"the forward leads to {self.target}, not {host}:{port}")
            shown = f"[{host}]" if ":" in host else host
            request = ["ssh", "-F", "none", "-S", str(self.control_path), "-O", "forward"]
            request += ["-L", f"{self.socket_path}:{shown}:{port}", "--", self.profile.hostname]
            try:
                answer = subprocess.run(
                    request, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"the ssh client did not open its forward within {timeout:g} s") from None
            if answer.returncode != 0:
                said = answer.stderr.decode(errors="replace").strip() or f"status {answer.returncode}"
                raise ConnectionRefusedError(f"the ssh client did not open its forward: {said}")
            self.target = (host, port)

    def start(self) -> None:
        """Start the client (on the thread whose end must kill it)."""
        self.directory = Path(tempfile.mkdtemp(prefix="manymap-tunnel-"))  # mode 0700
        self.socket_path = self.directory / "forward.sock"
        self.control_path = self.directory / "control.sock"
        (self.directory / "known_hosts").write_text(f"{_ALIAS} {self.host_key}\n")
        self.process = subprocess.Popen(
            self.argv(),
            stdin=subprocess.PIPE,  # the session's input: never written, closed when we go
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def read(self, stream: str) -> bool:
        """Take what the client wrote on ``stream`` (``"out"`` or ``"err"``); False at its end."""
        assert self.process is not None
        pipe = self.process.stdout if stream == "out" else self.process.stderr
        assert pipe is not None
        data = os.read(pipe.fileno(), 65536)
        if not data:
            return False
        lines = (self._partial[stream] + data).split(b"\n")
        self._partial[stream] = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if stream == "out" and raw == _READY:
                self.ready = True
                self.settled.set()
            elif stream == "err" and line:
                self._stderr.append(line)
                if "open failed" in line:
                    self.refused = line
        return True

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.ready = False
        self.settled.set()

    def why_ended(self) -> str:
        """Words for a client that exited: its status and its last message."""
        process = self.process
        status = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = process.wait(_STOP_WAIT)
        said = self._stderr[-1] if self._stderr else "no message"
        return f"the ssh client exited (status {status}): {said}"

    def connect(self) -> socket.socket:
        """A new connection through the forward (its own socket, the caller's to close)."""
        if self.socket_path is None:
            raise ConnectionRefusedError("the forward was never started")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except BaseException:
            sock.close()
            raise
        return sock

    def stop(self) -> None:
        """Kill the client, reap it and remove its directory (idempotent)."""
        self.fail("the tunnel is closed")
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_WAIT)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
