"""The high-level command interface of pathos.core, on manymap.secure.

``execute``, ``copy``, ``kill``, ``getpid``, ``getppid``, ``getchild``,
``randomport``, ``connect`` and ``serve`` do what their pathos.core namesakes
do, on this machine (``host=None``) or on a remote one over ssh. A host is a
name of the :mod:`manymap.hosts` registry, an ssh spec (``user@host:port``,
an ssh_config name) or a :class:`manymap.secure.HostProfile`; the remaining
keyword arguments are :func:`manymap.secure.resolve`'s (``ssh_config``,
``user``, ``port``, ``through``...).

No shell string is ever built from what you pass: commands are argv lists
(each item quoted for the remote shell), process listings are parsed in
Python rather than grepped, pids are checked to be integers. A command given
as a *string* is shell code you wrote, run as written, as in pathos.
"""

from __future__ import annotations

from manymap.core._commands import connect, copy, execute, kill, randomport
from manymap.core._pipe import LocalPipe
from manymap.core._proctable import getchild, getpid, getppid
from manymap.core._server import Server, serve
from manymap.launcher.lowlevel import show_public_paths

__all__ = [
    "LocalPipe",
    "Server",
    "connect",
    "copy",
    "execute",
    "getchild",
    "getpid",
    "getppid",
    "kill",
    "randomport",
    "serve",
]

show_public_paths(globals())
