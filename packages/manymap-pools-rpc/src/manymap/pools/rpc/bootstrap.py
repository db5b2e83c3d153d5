"""Starting a ``manymap-server``: its command line, its port, its secret.

For code that starts the server itself: ParallelPool's local node and its
ssh nodes use it, and so does the meta package's ``manymap.core.serve``.

How it goes. The server runs as ``python -m manymap.pools.rpc --secret-file
- ...`` (:func:`server_command`) under a *launcher* that keeps its stdin and
stdout open (:class:`ServerLauncher`): a command on this machine, or a
:class:`manymap.secure.Pipe` over ssh. :func:`start_server` launches it,
reads the first line the server writes on stdout, its port, and then writes
the secret and a newline on its stdin: the secret is never on a command
line. The server stops at the end of its stdin, so it stops with the
launcher's stdin, the ssh session or the process that started it;
:func:`stop_server` ends its stdin, gives it a moment and kills what is
left.
"""

from __future__ import annotations

from manymap.launcher import ConnectionLostError, ManymapError, ResultTimeoutError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # (the protocols here are the type checker's; at run time plain classes)

__all__ = [
    "START_TIMEOUT",
    "ServerLauncher",
    "ServerStartError",
    "server_command",
    "start_server",
    "stop_server",
]

#: Seconds a server may take to start and say its port.
START_TIMEOUT = 60.0
_STDERR_WAIT = 10.0  # seconds to collect what a server that did not start wrote on stderr
_STDERR_TAIL = 2000  # characters of that stderr kept in the error


class ServerStartError(ConnectionLostError, RuntimeError):
    """A ``manymap-server`` ended, or wrote something other than its port, before it
    said its port; the text holds what it said and the end of its stderr."""


class _Ended(Protocol):
    """What a launcher says about a command that ended."""

    @property
    def stderr(self) -> bytes:
        """What the command wrote on stderr (empty when it is not captured)."""


class ServerLauncher(Protocol):
    """What :func:`start_server` needs of the command running the server, with its stdin
    and stdout piped: :class:`manymap.secure.Pipe` (``stdin_open=True``) is one,
    ``manymap.core.LocalPipe`` (``stdin_open=True``) another."""

    def launch(self) -> None:
        """Start the command."""

    def readline(self, timeout: float | None = None) -> bytes:
        """The next line of stdout, ``b""`` at its end; raises
        :class:`~manymap.launcher.ResultTimeoutError` after ``timeout`` seconds."""

    def send(self, data: bytes | str) -> None:
        """Write ``data`` to the command's stdin."""

    def close_stdin(self) -> None:
        """End the command's stdin."""

    def response(self, timeout: float | None = None) -> _Ended:
        """Wait at most ``timeout`` seconds for the command to end (else
        :class:`~manymap.launcher.ResultTimeoutError`)."""

    def kill(self) -> None:
        """Stop the command and its process group now; harmless once it ended."""


def server_command(
    python: str,
    *,
    port: int | None = None,
    workers: int | None = None,
    max_connections: int | None = None,
    max_tasks_per_worker: int | None = None,
) -> list[str]:
    """The argv that runs ``manymap-server`` with ``python``, reading its secret from stdin.

    Args:
        python: the interpreter, with manymap-pools-rpc installed where it runs.
        port: the port to listen on (``None``: a free one).
        workers: ppft workers (``None``: the host's cores).
        max_connections: clients served at once (``None``: ``workers``).
        max_tasks_per_worker: tasks after which a worker is replaced (``None``: never).
    """
    argv = [python, "-m", "manymap.pools.rpc", "--secret-file", "-"]
    for option, value in (
        ("--port", port),
        ("--workers", workers),
        ("--max-connections", max_connections),
        ("--max-tasks-per-worker", max_tasks_per_worker),
    ):
        if value is not None:
            argv += [option, str(int(value))]
    return argv


def start_server(
    launcher: ServerLauncher,
    secret: str,
    *,
    where: str,
    timeout: float = START_TIMEOUT,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """Launch ``launcher`` (running :func:`server_command`), read the port the server
    says, then hand it ``secret`` on its stdin.

    Args:
        launcher: the command, not launched yet.
        secret: what the server's clients must prove they know (one line).
        where: where it runs, for messages (``"localhost"``, a host's name).
        timeout: seconds the server may take to say its port.
        host: the ssh host it runs on, named by :class:`ServerStartError`.
        port: that host's ssh port.

    Returns:
        The port the server listens on, on the loopback of the host it runs on.

    Raises:
        ServerStartError: it ended, or said something other than its port, first (it is killed).
        ResultTimeoutError: it said nothing within ``timeout`` seconds (it is killed).
        ValueError: ``secret`` is empty or more than one line.
        Exception: what ``launcher.launch()`` raises (nothing runs then), e.g.
            ``FileNotFoundError`` for a missing interpreter on this machine, or
            ``AuthenticationError`` from ssh.
    """
    if not secret.strip() or "\n" in secret or "\r" in secret:
        raise ValueError("a manymap-server secret is one line of text, not empty")
    launcher.launch()
    try:
        line = launcher.readline(timeout)
    except BaseException:
        launcher.kill()
        raise
    if not line.strip().isdigit():
        launcher.kill()
        said = f"manymap-server on {where} did not start: {line!r} {_stderr_of(launcher)}"
        raise ServerStartError(said.strip(), host=host, port=port)
    try:
        launcher.send(secret + "\n")
    except BaseException:
        launcher.kill()
        raise
    return int(line)


def _stderr_of(launcher: ServerLauncher) -> str:
    """The end of what an ended (or killed) server wrote on stderr, if the launcher kept it."""
    try:
        stderr = launcher.response(_STDERR_WAIT).stderr
    except (ManymapError, OSError):
        return ""
    return stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]


def stop_server(launcher: ServerLauncher, grace: float) -> None:
    """Stop a server that :func:`start_server` started: end its stdin (it stops at the
    end of its input), wait at most ``grace`` seconds for it to end, then kill what is left.

    Raises:
        Exception: what the launcher raises while it waits, e.g.
            ``ConnectionLostError`` when its ssh connection is gone (it is killed all the same).
    """
    try:
        launcher.close_stdin()
        if grace > 0:
            launcher.response(grace)
    except ResultTimeoutError:
        pass  # still running: killed below
    finally:
        launcher.kill()
