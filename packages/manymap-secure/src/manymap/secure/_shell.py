"""Shell helpers of remote commands: quoting, script building, short control scripts.

Every script a remote login shell gets is built here, only from quoted pieces
(``shlex.quote`` / ``shlex.join``), never by pasting user text into shell code.
:func:`run_script` runs one short script (a kill, a liveness check, a detached
start) on a new session of a connection and returns its status and output.
"""

from __future__ import annotations

import math
import os
import re
import selectors
import shlex
import time
from collections.abc import Mapping, Sequence

import paramiko

from manymap.launcher import ConnectionLostError, ResultTimeoutError

from ._connection import Connection

__all__ = [
    "SHELL_FUNCTIONS",
    "alive_script",
    "command_text",
    "detached_script",
    "foreground_script",
    "kill_script",
    "pid_marker",
    "prelude",
    "run_script",
    "wait_gone_script",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 65536


def command_text(command: str | Sequence[str]) -> str:
    """The command as the remote shell gets it: an argv list quoted item by item, a string as written.

    Raises:
        ValueError: the command is empty.
    """
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("empty command")
        return command
    argv = [os.fspath(arg) for arg in command]
    if not argv:
        raise ValueError("empty command")
    return shlex.join(argv)


def prelude(cwd: str | None, env: Mapping[str, str] | None) -> str:
    """``cd`` and ``export`` lines for ``cwd`` and ``env`` (names checked, values quoted).

    Raises:
        ValueError: a name of ``env`` is not an environment variable name.
    """
    lines = []
    if cwd is not None:
        lines.append(f"cd {shlex.quote(cwd)} || exit 1")
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return "".join(line + "\n" for line in lines)


def pid_marker(nonce: str) -> tuple[str, re.Pattern[bytes]]:
    """The ``printf`` that announces a pid with ``nonce``, and the pattern that finds its line."""
    return (
        f"printf 'MANYMAP-PID-{nonce} %s\\n'",
        re.compile(rb"MANYMAP-PID-" + nonce.encode() + rb" (\d+)\r?\n"),
    )


def foreground_script(mark: str, setup: str, command: str, argv_form: bool) -> str:
    """Print the shell's pid (the command's pid and process group), then ``exec`` the command.

    ``mark`` is the ``printf`` of :func:`pid_marker`, ``setup`` the :func:`prelude`.
    Shell code (``argv_form`` false) runs as written, so it is not ``exec``'d.
    """
    body = f"exec {command}" if argv_form else command
    return f'{mark} "$$"\n{setup}{body}\n'


def detached_script(mark: str, setup: str, command: str, argv_form: bool, log: str) -> str:
    """Start the command with ``setsid`` in the background, output to ``log``; print its pid.

    The script waits (bounded) until setsid has made the new process group, so
    that a kill right after launch reaches the whole group.
    """
    target = command if argv_form else f"/bin/sh -c {shlex.quote(command)}"
    return (
        f"{setup}"
        f"setsid {target} </dev/null >{shlex.quote(log)} 2>&1 &\n"
        "p=$!\n"
        "i=0\n"
        'while ! kill -0 -"$p" 2>/dev/null && kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do\n'
        "  i=$((i+1)); sleep 0.01\n"
        "done\n"
        f'{mark} "$p"\n'
    )


# POSIX sh functions for the control commands of remote processes. A process that
# ended is a zombie until its parent reaps it, and a detached one's parent is init,
# which may take its time: ``kill -0`` would call a zombie alive, so where /proc
# exists a process counts as alive only if its state is not Z.
SHELL_FUNCTIONS = r"""_mm_alive() {
  if [ -r "/proc/$1/stat" ]; then
    { read -r _mm_line < "/proc/$1/stat"; } 2>/dev/null || return 1
    set -- ${_mm_line##*) }
    [ "$1" != Z ]
  elif [ -d /proc/self ]; then
    return 1
  else
    kill -0 "$1" 2>/dev/null
  fi
}
_mm_group_alive() {
  _mm_g=$1
  if [ -d /proc/self ]; then
    for _mm_f in /proc/[0-9]*/stat; do
      { read -r _mm_line < "$_mm_f"; } 2>/dev/null || continue
      set -- ${_mm_line##*) }
      [ "$1" != Z ] && [ "$3" = "$_mm_g" ] && return 0
    done
    return 1
  fi
  kill -0 -"$_mm_g" 2>/dev/null
}
"""


def kill_script(pid: int, sig: int, grace: float) -> str:
    """Signal process group ``pid`` (or the process, if it leads none); SIGKILL what outlives ``grace``.

    Exits 0 once every process of the group is gone, 9 if SIGKILL was needed,
    2 if nothing was left to signal. No ``--`` after ``kill -SIG``: dash refuses it.
    """
    rounds = max(1, math.ceil(grace / 0.1))
    return (
        SHELL_FUNCTIONS
        + f"_mm_alive {pid} || _mm_group_alive {pid} || exit 2\n"
        + f"kill -{sig} -{pid} 2>/dev/null || kill -{sig} {pid} 2>/dev/null || exit 2\n"
        + "i=0\n"
        + f"while _mm_group_alive {pid} || _mm_alive {pid}; do\n"
        + "  i=$((i+1))\n"
        + f"  if [ $i -ge {rounds} ]; then\n"
        + f"    kill -9 -{pid} 2>/dev/null; kill -9 {pid} 2>/dev/null; exit 9\n"
        + "  fi\n"
        + "  sleep 0.1\n"
        + "done\n"
        + "exit 0\n"
    )


def alive_script(pid: int) -> str:
    """Exit 0 if process ``pid`` is alive (not a zombie), 1 otherwise."""
    return f"{SHELL_FUNCTIONS}_mm_alive {pid}"


def wait_gone_script(pid: int, timeout: float | None) -> str:
    """Wait until process ``pid`` is gone (exit 0), at most ``timeout`` seconds (then exit 3)."""
    rounds = "" if timeout is None else f' && [ "$i" -lt {max(1, math.ceil(timeout / 0.1))} ]'
    return (
        f"{SHELL_FUNCTIONS}i=0\nwhile _mm_alive {pid}{rounds}; do i=$((i+1)); sleep 0.1; done\n"
        f"_mm_alive {pid} && exit 3\nexit 0\n"
    )


def run_script(
    connection: Connection, script: str, *, timeout: float, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """Run a short shell script on a new session of ``connection``; ``(status, stdout, stderr)``.

    Meant for small outputs (control commands); waits at most ``timeout`` seconds.

    Raises:
        ResultTimeoutError: it did not finish in time (the channel is closed).
        ConnectionLostError: the connection is down or dropped meanwhile.
    """
    profile = connection.profile
    channel = connection.open_session(timeout=min(timeout, profile.connect_timeout))
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    waiter = selectors.DefaultSelector()  # no descriptor limit, unlike select()
    try:
        channel.exec_command(script)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        waiter.register(channel, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeoutError(
                    f"{profile.address}: remote command did not finish within {timeout:g} s"
                )
            waiter.select(min(remaining, 1.0))
            while channel.recv_ready():
                out += channel.recv(_CHUNK)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(_CHUNK)
            if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready():
                channel.status_event.wait(min(remaining, 0.05))
    except (OSError, EOFError, paramiko.SSHException) as error:
        raise ConnectionLostError(
            f"connection lost running a remote command: {error}", host=profile.hostname, port=profile.port
        ) from None
    finally:
        waiter.close()
        channel.close()
    if (not channel.exit_status_ready() or channel.exit_status == -1) and not connection.alive:
        raise connection.lost_error()
    return channel.exit_status, bytes(out), bytes(err)
