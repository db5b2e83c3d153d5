"""``ParallelPool``: local ppft workers plus manymap-servers on other hosts.

How it works. Every worker, local or remote, is one authenticated
connection to a ``manymap-server`` (``_server.py``), which runs that
connection's batches on a ppft worker process of its own. Local workers are
connections to a server this pool starts on 127.0.0.1; remote ones go to
servers given as ``host:port`` or started over ssh and reached through a
tunnel (``_nodes.py``). So one scheduler serves every node alike: an idle
connection gets the next batch, whichever node it belongs to, and each node
gets work in proportion to its workers.

One manager thread per pool owns the connections
(:class:`manymap.launcher.ManagedWorkerPool`). It waits on all of them at
once, plus a doorbell that other threads ring when work is queued, a task
must be stopped, or the pool resizes or closes:

- an idle connection gets the next batch from the launcher's queue: the
  function by value once per connection (cached in the worker), then the
  batch's items, encoded in the caller's thread by
  :meth:`ParallelPool._encode` so that what cannot be serialized fails before
  anything is queued;
- ``DONE`` settles the batch and writes the task's captured stdout to ours,
  each line prefixed with its host and worker;
- ``LOST`` (the ppft worker died) loses the batch; the connection goes on
  with a fresh worker;
- end of file (the server or its tunnel is gone) loses the batch, and the
  manager opens a replacement connection; a node it cannot reach again is
  dropped with a warning, and when no node is left the pool breaks with
  :class:`~manymap.launcher.WorkerLostError` rather than wait.

A timeout or Ctrl-C closes the connection running the task: the server then
kills its worker, and the manager opens a new connection.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from manymap.launcher import (
    AuthenticationError,
    Batch,
    ConnectionLostError,
    Job,
    ManagedWorkerPool,
    NodesAlias,
    SerializationError,
    TaskFailure,
    WorkerLostError,
    warn_user,
)
from manymap.pools.rpc import _protocol as proto
from manymap.pools.rpc._nodes import LocalNode, Node, RemoteHost, ServerBusy, parse_server
from manymap.pools.rpc._remote import FUNCTION_CACHE, KEY
from manymap.serialize import FunctionPayloads, dumps, encode_batch, loads

__all__ = ["ParallelPool"]

_FRAME_LIMIT = 1 << 31  # bytes of one result frame
_BUSY_WAIT = 10.0  # seconds to wait for a place on a server whose clients are all connected


class _Slot:
    """One connection: one ppft worker on one node."""

    __slots__ = ("batch", "info", "known", "name", "node", "sock", "token")

    def __init__(self, node: Node, sock: socket.socket, info: dict[str, Any]) -> None:
        self.node = node
        self.sock = sock
        self.info = info
        self.name = f"{node.label}/ppft-{info.get('worker', '?')}"
        self.batch: Batch | None = None
        self.token = 0
        self.known: set[int] = set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


class ParallelPool(ManagedWorkerPool):
    """Local ppft workers plus RPC servers on other hosts (pathos' ``ParallelPool``).

    Args:
        nodes: local workers (default: the number of cores; ``0`` with
            ``servers`` for remote workers only); alias ``ncpus``.
        servers: where remote workers are: ``"host:port"`` of a running
            ``manymap-server`` (give its ``secret``); a host of a host
            registry (a :class:`RemoteHost` such as
            :class:`manymap.hosts.Host`, or its registered name), which
            brings its own interpreter, environment, worker count and jump
            host; or an ssh host spec (``"ssh://user@host[:port]"`` or an
            ssh_config host name). For hosts and ssh specs the pool starts
            ``manymap-server`` over ssh, tunnels to it, and stops it all on
            close. A server that cannot be reached is skipped with a
            :class:`RuntimeWarning` naming it and why.
        secret: the secret of the ``host:port`` servers.
        python: the interpreter that runs ``manymap-server`` on ssh host specs.
        server_workers: ppft workers of each server started on an ssh host
            spec (default: the cores of that host).
        ssh_config: the ssh_config that resolves the ssh host specs.
        **options: default task options: ``chunksize``, ``timeout``,
            ``retries``, ``progress``.

    A task's stdout reaches this process's stdout once its batch is done,
    each line prefixed with ``[host/worker]``.
    """

    node_aliases = ("ncpus",)
    ncpus = NodesAlias()
    batch_seconds = 0.002  # a round trip through a server costs more than through a pipe

    def __init__(
        self,
        nodes: int | None = None,
        *,
        servers: Iterable[str | RemoteHost] = (),
        secret: str | None = None,
        python: str = "python3",
        server_workers: int | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(servers, str):
            raise TypeError("servers must be a sequence of server specs, not one string")
        self._server_specs = tuple(servers)
        for spec in self._server_specs:
            if not isinstance(spec, (str, RemoteHost)):
                raise TypeError(f"servers: {spec!r} is neither a server spec (str) nor a host profile")
        remote_only = nodes == 0 or options.get("ncpus") == 0
        if remote_only:
            if not self._server_specs:
                raise ValueError("nodes must be a positive integer, got 0 (0 local workers needs servers)")
            nodes = None
            options.pop("ncpus", None)
        super().__init__(nodes, **options)
        if remote_only:
            self._nodes = 0
        self._secret = secret
        self._python = python
        self._server_workers = server_workers
        self._ssh_config = None if ssh_config is None else os.fspath(ssh_config)
        self._functions = FunctionPayloads()
        self._tokens = itertools.count(1)
        self._slots: list[_Slot] = []
        self._remote: list[Node] = []
        self._local: LocalNode | None = None
        self._down: dict[str, str] = {}
        self._errors: list[BaseException] = []
        self._stopping: set[_Slot] = set()  # slots to close: timeouts and interrupts
        self._orphans: list[Batch] = []  # batches whose server went away, to run again
        self._slot_lock = threading.Lock()  # guards the list of connections (read by other threads)

    # ---------------------------------------------------------------- info

    @property
    def servers(self) -> tuple[str | RemoteHost, ...]:
        """The server specs the pool was given."""
        return self._server_specs

    @property
    def capacity(self) -> int:
        """Workers serving now, local and remote."""
        with self._slot_lock:
            return len(self._slots)

    def __repr__(self) -> str:
        return f"<ParallelPool nodes={self._nodes} servers={len(self._server_specs)} {self._state}>"

    # --------------------------------------------- the launcher's hooks

    def _capacity(self) -> int:
        # Every worker, local and remote; before the start, two per server as a guess.
        return max(1, self.capacity or self._nodes + 2 * len(self._server_specs))

    def _encode(self, job: Job, batches: list[Batch]) -> None:
        if job.payload is None:
            job.payload = self._functions.payload(job.function)
        for batch in batches:
            batch.payload = _encode_items(job.kwargs, batch.items, batch.indices[0], job.star)

    def _start_workers(self) -> None:
        self._orphans = []
        self._down = {}
        self._errors = []
        nodes: list[Node] = [
            parse_server(
                spec,
                secret=self._secret,
                python=self._python,
                workers=self._server_workers,
                ssh_config=self._ssh_config,
            )
            for spec in self._server_specs
        ]
        starters = [threading.Thread(target=self._open_node, args=(node,), daemon=True) for node in nodes]
        if self._nodes:
            self._local = LocalNode(self._nodes)
            starters.append(threading.Thread(target=self._open_node, args=(self._local,), daemon=True))
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        self._remote = [node for node in nodes if node.label not in self._down]
        for label, why in self._down.items():
            warn_user(
                f"ParallelPool: server {label} is not used: {why}; "
                "its share of the work goes to the other nodes"
            )
        if not self._slots:
            why = "; ".join(f"{label}: {reason}" for label, reason in self._down.items())
            refused = self._errors and all(isinstance(e, AuthenticationError) for e in self._errors)
            kind = AuthenticationError if refused else ConnectionLostError
            error = kind(f"ParallelPool has no usable node ({why})")
            self._stop_nodes()
            with self._lock:
                self._state = "terminated"
                self._broken = error
            raise error
        self._start_manager((slot.sock, slot) for slot in self._slots)

    def _open_node(self, node: Node) -> None:
        """Start ``node`` and open one connection per worker it announces (a starter thread)."""
        slots: list[_Slot] = []
        try:
            node.start()
            slots.append(_Slot(node, *node.connect()))
            node.workers = int(slots[0].info.get("workers", 1))
            want = self._nodes if isinstance(node, LocalNode) else node.workers
            for _ in range(want - 1):
                try:
                    slots.append(_Slot(node, *node.connect()))
                except ServerBusy:  # other clients hold the rest of its workers
                    break
        except Exception as error:
            self._down[node.label] = _why(error)
            self._errors.append(error)
            for slot in slots:
                slot.close()
            with contextlib.suppress(Exception):
                node.stop()
            return
        with self._slot_lock:
            self._slots.extend(slots)

    def _timed_out(self, batch: Batch) -> None:
        with self._slot_lock:
            for slot in self._slots:
                if slot.batch is batch:
                    self._stopping.add(slot)
        self._wake_manager()

    # -------------------------------------------------------- the manager

    def _handle(self, ready: list[Any]) -> None:
        for slot in ready:
            if not self._receive(slot):
                self._reap(slot, "the connection to its server was lost")
        self._stop_slots()

    def _stop_slots(self) -> None:
        """Close the connections running timed-out or interrupted tasks, and open new ones."""
        doomed = self._doomed_jobs()
        with self._slot_lock:
            for slot in self._slots:
                if slot.batch is not None and slot.batch.job in doomed:
                    self._stopping.add(slot)
            stopping, self._stopping = self._stopping, set()
        for slot in stopping:
            if slot in self._slots:
                self._reap(slot, "its connection was closed to stop a task", stopped=True)

    def _staff(self) -> None:
        """Open or close local connections so that ``nodes`` of them serve."""
        if self._closing:
            return
        with self._slot_lock:
            local = [slot for slot in self._slots if isinstance(slot.node, LocalNode)]
        want = self.nodes
        if want and self._local is None:
            node = LocalNode(want)
            try:
                node.start()
            except Exception as error:
                self._break(error)
                return
            self._local = node
        for _ in range(want - len(local)):
            assert self._local is not None
            if self._local.label in self._down:
                break
            if not self._replace(self._local):
                break
        for slot in local[want:]:
            if slot.batch is None:
                self._forget(slot)

    def _replace(self, node: Node) -> bool:
        """Open one more connection to ``node``; False (and the node dropped) if it fails."""
        deadline = time.monotonic() + _BUSY_WAIT
        while True:
            try:
                slot = _Slot(node, *node.connect())
                break
            except ServerBusy:
                # The server has not yet seen the end of the connection this one
                # replaces: it frees that place within moments.
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
            except Exception as error:
                if node.label not in self._down:
                    self._down[node.label] = _why(error)
                    warn_user(
                        f"ParallelPool: server {node.label} is lost: {_why(error)}; "
                        "its share of the work goes to the other nodes"
                    )
                return False
        with self._slot_lock:
            self._slots.append(slot)
        self._add_channel(slot.sock, slot)
        return True

    def _forget(self, slot: _Slot) -> None:
        with self._slot_lock:
            if slot in self._slots:
                self._slots.remove(slot)
        self._remove_channel(slot.sock)
        slot.close()

    def _dispatch(self) -> None:
        if self._killing:
            return
        with self._slot_lock:
            idle = [slot for slot in self._slots if slot.batch is None]
        for slot in idle:
            batch = self._orphans.pop(0) if self._orphans else self._take_batch()
            if batch is None:
                return
            self._send(slot, batch)

    def _send(self, slot: _Slot, batch: Batch) -> None:
        job = batch.job
        if job.stopped():
            batch.lose("its map was stopped before the batch was sent")
            return
        if job.payload is None or batch.payload is None:  # a re-queued part of a lost batch
            try:
                self._encode(job, [batch])
            except SerializationError as error:
                batch.start(slot.name, slot.node.host)
                failure = TaskFailure.capture(error)
                batch.finish([None] * len(batch), dict.fromkeys(range(len(batch)), failure))
                return
        key = self._functions.key(job.payload)
        data = batch.payload
        batch.payload = None
        slot.batch, slot.token = batch, next(self._tokens)
        batch.start(slot.name, slot.node.host)
        function = b""
        if key not in slot.known:
            if len(slot.known) >= FUNCTION_CACHE:
                slot.known.clear()  # the worker clears its cache at the same point
            function = job.payload
            slot.known.add(key)
        # If the connection is gone, the manager sees end of file and loses the batch.
        with contextlib.suppress(OSError):
            proto.send(
                slot.sock,
                proto.RUN,
                proto.TOKEN.pack(slot.token),
                KEY.pack(key, job.star, len(function)),
                function,
                data,
            )

    def _receive(self, slot: _Slot) -> bool:
        """Handle a frame from ``slot``. False if its connection is gone."""
        try:
            frame = proto.receive(slot.sock, _FRAME_LIMIT, 300.0)
        except (EOFError, OSError):
            return False
        kind = frame[:1]
        body = memoryview(frame)[1:]
        batch = slot.batch
        if kind == proto.DONE:
            token, duration, size = proto.DONE_HEAD.unpack_from(body)
            start = proto.DONE_HEAD.size
            out = bytes(body[start : start + size]).decode("utf-8", "replace")
            if token != slot.token or batch is None:
                return True
            slot.batch = None
            if out:
                _forward(out, slot.name)
            try:
                values, failures = loads(body[start + size :])
            except Exception as error:
                values, failures = None, {0: TaskFailure.capture(error)}
            if values is None:
                values, failures = [None] * len(batch), _for_all(failures[0], len(batch))
            batch.finish(values, failures, duration=duration)
            return True
        if kind == proto.LOST:
            token, code = proto.LOST_HEAD.unpack_from(body)
            reason = bytes(body[proto.LOST_HEAD.size :]).decode("utf-8", "replace")
            slot.known.clear()  # a fresh worker holds no function
            if token == slot.token and batch is not None:
                slot.batch = None
                batch.lose(f"{reason} on {slot.node.label}", exitcode=code or None)
            return True
        return False  # not this protocol

    def _reap(self, slot: _Slot, reason: str, *, stopped: bool = False) -> None:
        """``slot``'s connection is gone or closed: re-run or lose its batch, open a replacement.

        A batch whose connection was closed to stop it (``stopped``) is lost.
        One whose server went away is no fault of its tasks: it runs again,
        uncharged, on the next idle worker of any node.
        """
        self._forget(slot)
        batch, slot.batch = slot.batch, None
        if batch is not None:
            again = None if stopped or self._closing or self._killing else self._again(batch)
            if again is None:
                batch.lose(f"{reason} ({slot.node.label})")
            else:
                self._orphans.append(again)
        if self._killing:
            return
        if slot.node.label not in self._down and not (self._closing and self._draining):
            self._replace(slot.node)
        with self._slot_lock:
            alive = bool(self._slots)
        if not alive:
            lost = "; ".join(f"{label}: {why}" for label, why in self._down.items()) or reason
            error = WorkerLostError(f"ParallelPool: every server is gone ({lost})")
            orphans, self._orphans = self._orphans, []
            for batch in orphans:
                batch.lose(f"{reason} ({lost})")
            self._break(error)

    def _again(self, batch: Batch) -> Batch | None:
        """A fresh copy of an unsettled ``batch`` to run again, the old one retired.

        The copy stands for the same tasks (the job counts tasks in flight, not
        batch objects); the old one is marked settled so that its timeout, which
        ran from its first start, no longer applies. ``None`` if it was settled.
        """
        with self._lock:
            if batch.settled:
                return None
            batch.settled = True
            return Batch(batch.job, batch.indices, batch.items, batch.attempt)

    def _stop_all(self) -> None:
        orphans, self._orphans = self._orphans, []
        for batch in orphans:
            batch.lose("the pool was terminated before it could run again")
        with self._slot_lock:
            slots, self._slots = list(self._slots), []
        for slot in slots:
            self._remove_channel(slot.sock)
            slot.close()
            if slot.batch is not None:
                batch, slot.batch = slot.batch, None
                batch.lose("its connection was closed as the pool was terminated")
        self._stop_nodes()

    def _stop_nodes(self) -> None:
        nodes: list[Node] = [*self._remote, *([self._local] if self._local is not None else [])]
        self._remote, self._local = [], None
        stoppers = [threading.Thread(target=node.stop, daemon=True) for node in nodes]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(60.0)


def _encode_items(kwargs: Any, items: list[Any], first: int, star: bool) -> bytes:
    """A batch's arguments; what cannot be shipped is named by task index."""
    return encode_batch(lambda obj, name: dumps(obj, name=name), kwargs, items, first, star)


def _forward(out: str, worker: str) -> None:
    """A task's captured output, each line prefixed with its host and worker."""
    lines = out.splitlines()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write("".join(f"[{worker}] {line}\n" for line in lines))
        sys.stdout.flush()


def _for_all(failure: TaskFailure, count: int) -> dict[int, TaskFailure]:
    return dict.fromkeys(range(count), failure)


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
