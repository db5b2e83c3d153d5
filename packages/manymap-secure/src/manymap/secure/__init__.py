"""manymap.secure: ssh commands, file copies and tunnels through paramiko, host keys verified.

- :class:`Pipe` runs a command on a remote host (exit status, output whole or
  streamed, stdin, environment, the kill of its process group);
- :class:`DetachedCommand` starts one that outlives the ssh session (its own
  session, output to a log), and checks, waits for or kills it later;
- :class:`Copier` copies files and directories both ways over SFTP;
- :class:`Tunnel` forwards a race-free local port on 127.0.0.1 to a
  ``host:port`` reachable from the ssh server;
- :func:`resolve` and :class:`HostProfile` turn ``user@host:port`` or an
  ssh_config name into everything a connection needs; :func:`connect` opens
  (or shares) the one ssh connection per host that all of them use;
- :func:`pick_remote_ports` picks free ports on a remote host.

Errors name the host and port: :class:`~manymap.launcher.AuthenticationError`,
:class:`~manymap.launcher.HostKeyError`,
:class:`~manymap.launcher.ConnectionLostError`,
:class:`~manymap.launcher.TunnelError` (re-exported here), and this package's
:class:`ConnectError`, :class:`RemoteCommandError`, :class:`CopyError`,
:class:`SourceNotFoundError`.
"""

from __future__ import annotations

from manymap.launcher import AuthenticationError, ConnectionLostError, HostKeyError, TunnelError
from manymap.launcher.lowlevel import show_public_paths

from .__about__ import __version__
from ._command import CommandResult
from ._connection import Connection, connect
from ._copier import Copier, CopyResult
from ._detached import DetachedCommand
from ._errors import ConnectError, CopyError, RemoteCommandError, SourceNotFoundError
from ._hosts import SSH_CONFIG_ENV, HostProfile, default_ssh_config, parse_host_spec, resolve
from ._location import RemotePath, parse_location
from ._pipe import Pipe
from ._remote import pick_remote_port, pick_remote_ports
from ._tunnel import Tunnel

__all__ = [
    "SSH_CONFIG_ENV",
    "AuthenticationError",
    "CommandResult",
    "ConnectError",
    "Connection",
    "ConnectionLostError",
    "Copier",
    "CopyError",
    "CopyResult",
    "DetachedCommand",
    "HostKeyError",
    "HostProfile",
    "Pipe",
    "RemoteCommandError",
    "RemotePath",
    "SourceNotFoundError",
    "Tunnel",
    "TunnelError",
    "__version__",
    "connect",
    "default_ssh_config",
    "parse_host_spec",
    "parse_location",
    "pick_remote_port",
    "pick_remote_ports",
    "resolve",
]


show_public_paths(globals())
