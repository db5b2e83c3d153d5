"""``ParallelPool``: local ppft workers plus manymap-servers on other hosts.

How it works. Every worker, local or remote, is one authenticated
connection to a ``manymap-server`` (``_server.py``), which runs that
connection's batches on a ppft worker process of its own. Local workers are
connections to a server this pool starts on 127.0.0.1 (in a session of its
own); remote ones go to servers given as ``host:port`` or started over ssh and
reached through a tunnel (``_nodes.py``). So one scheduler serves every node
alike: an idle connection gets the next batch, whichever node it belongs to,
and each node gets work in proportion to its workers.

One manager thread per pool owns the connections
(:class:`manymap.launcher.lowlevel.ManagedWorkerPool`) and never blocks: frames go
out and come in as far as the sockets take them (``_slot.py``); connecting,
starting a server and the handshake run on threads of their own
(``_connector.py``). An idle connection gets the next batch, as every
managed pool sends it (``ManagedWorkerPool._send``: encoded in the caller's
thread, so that what cannot be serialized fails before anything is queued;
the function once per connection); this pool's part
(:meth:`ParallelPool._transmit`) is a ``RUN`` frame. Large arrays in the
arguments are copied once as they are encoded (:func:`_copied_parts`) and
written as pieces of that frame; the results' arrays are views of the
``DONE`` frame they came in. ``DONE`` settles the
batch (``ManagedWorker.settle``), ``LOST`` (the ppft worker died) loses it.
A server silent for ``server_timeout`` seconds while it owes an answer (it
answers pings even while its workers are busy) is frozen or cut off, and
its connections are closed. The batches
of a closed connection run again, uncharged, elsewhere, and a replacement is
asked for; a node that cannot be reached again is dropped with a warning;
with no node left the pool breaks with
:class:`~manymap.launcher.WorkerLostError` rather than wait. A timeout or
Ctrl-C closes the connection running the task: the server kills its worker
and the worker's process group.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import time
from collections.abc import Iterable

from manymap.launcher import (
    AbstractWorkerPool,
    AuthenticationError,
    ConnectionLostError,
    WorkerLostError,
)
from manymap.launcher.lowlevel import Batch, ManagedWorkerPool, NodesAlias, warn_user
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._connector import Connector, weak_call
from manymap.pools.rpc._nodes import Connection, LocalNode, Node, ServerBusy, parse_server
from manymap.pools.rpc._opening import check_specs, check_tasks, open_nodes, rerun, stop_nodes, warn_down, why
from manymap.pools.rpc._slot import Slot
from manymap.serialize import PoolCodec, dumps_parts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.pools.rpc._remote_host import RemoteHost

__all__ = ["ParallelPool"]


class ParallelPool(ManagedWorkerPool[Slot]):
    """Local ppft workers plus RPC servers on other hosts (pathos' ``ParallelPool``).

    Args:
        nodes: local workers (default, or ``None``: the number of cores; ``0``
            with ``servers`` for remote workers only); alias ``ncpus``.
        servers: ``"host:port"`` of running ``manymap-server`` s (give their
            ``secret``); hosts of a host registry (a :class:`RemoteHost` such
            as :class:`manymap.hosts.Host`, or its registered name: its own
            interpreter, environment, worker count, jump host); or ssh host
            specs (``"ssh://user@host[:port]"``, ssh_config names). On hosts
            and ssh specs the pool starts ``manymap-server`` over ssh, tunnels
            to it, and stops it all on close. A server that cannot be reached
            is skipped with a :class:`RuntimeWarning` naming it and why.
            Assigning to :attr:`servers` takes effect at the next map.
        secret: the secret of the ``host:port`` servers.
        python: the interpreter that runs ``manymap-server`` on ssh host specs.
        server_workers: ppft workers of each server started on an ssh host
            spec (default: the cores of that host).
        ssh_config: the ssh_config that resolves the ssh host specs.
        server_timeout: seconds a server may stay silent while it owes an
            answer (it answers pings even while its workers are busy) before
            it counts as lost and its tasks run elsewhere.
        maxtasksperchild: replace a worker process after this many tasks (default: never);
            a ``host:port`` server keeps its own ``--max-tasks-per-worker``.
        **options: default task options: ``chunksize``, ``timeout``, ``retries``, ``progress``.

    A task's stdout reaches this process's stdout once its batch is done,
    each line prefixed with ``[host/worker]``.
    """

    node_aliases = ("ncpus",)
    ncpus = NodesAlias()
    batch_seconds = 0.002  # a round trip through a server costs more than through a pipe
    _calls_direct = True  # a pipe to an idle connection is sent from the caller's thread, no job

    def __init__(
        self,
        nodes: int | None = None,
        *,
        servers: Iterable[str | RemoteHost] = (),
        secret: str | None = None,
        python: str = "python3",
        server_workers: int | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        server_timeout: float = 6.0,
        maxtasksperchild: int | None = None,
        **options: Any,
    ) -> None:
        self._maxtasks = check_tasks(maxtasksperchild)
        self._server_specs = check_specs(servers)
        remote_only = nodes == 0 or options.get("ncpus") == 0
        if remote_only:
            if not self._server_specs:
                raise ValueError("nodes must be a positive integer, got 0 (0 local workers needs servers)")
            nodes = None
            options.pop("ncpus", None)
        if not server_timeout > 0:
            raise ValueError(f"server_timeout must be a positive number of seconds, got {server_timeout!r}")
        self._remote_only = remote_only
        super().__init__(nodes, **options)
        self._secret = secret
        self._python = python
        self._server_workers = server_workers
        self._ssh_config = None if ssh_config is None else os.fspath(ssh_config)
        self.server_timeout = float(server_timeout)
        self._codec = PoolCodec(_copied_parts)
        self._slots: list[Slot] = []
        self._remote: list[Node] = []
        self._spec_of: dict[Node, str | RemoteHost] = {}  # the spec each remote node came from
        self._local: LocalNode | None = None
        self._connector: Connector | None = None
        self._servers_changed = False
        self._down: dict[str, str] = {}
        self._errors: list[BaseException] = []
        self._stopping: set[Slot] = set()  # slots to close: timeouts and interrupts
        self._orphans: list[Batch] = []  # batches whose server went away, to run again
        self._slot_lock = threading.Lock()  # guards the list of connections (read by other threads)

    # ---------------------------------------------------------------- info

    @property
    def servers(self) -> tuple[str | RemoteHost, ...]:
        """The server specs; assigning new ones takes effect at the next map
        (the old servers' connections are closed, the new servers started)."""
        return self._server_specs

    @servers.setter
    def servers(self, specs: Iterable[str | RemoteHost]) -> None:
        checked = check_specs(specs)
        with self._start_lock:
            self._server_specs = checked
            self._servers_changed = self._workers_up

    @property
    def nodes(self) -> int:
        """The number of local workers; assigning resizes a live pool (``None``: the default)."""
        return self._nodes

    @nodes.setter
    def nodes(self, value: int | None) -> None:
        base: Any = AbstractWorkerPool.nodes
        base.fset(self, self._default_nodes() if value is None else value)

    @property
    def capacity(self) -> int:
        """Workers serving now, local and remote."""
        with self._slot_lock:
            return len(self._slots)

    def __repr__(self) -> str:
        return f"<ParallelPool nodes={self._nodes} servers={len(self._server_specs)} {self._state}>"

    # --------------------------------------------- the launcher's hooks

    def _initial_nodes(self, nodes: int | None, aliases: dict[str, int | None]) -> int:
        # ParallelPool(0, servers=...) has no local workers: the base accepts no 0.
        return 0 if self._remote_only else super()._initial_nodes(nodes, aliases)

    def _capacity(self) -> int:
        # Every worker, local and remote; before the start, two per server as a guess.
        return max(1, self.capacity or self._nodes + 2 * len(self._server_specs))

    def _ensure_started(self) -> None:
        super()._ensure_started()
        if self._servers_changed:
            self._switch_servers()

    def _start_workers(self) -> None:
        self._orphans = []
        self._down = {}
        self._errors = []
        self._servers_changed = False
        nodes = self._parse_specs()
        if self._nodes:
            self._local = LocalNode(self._nodes, max_tasks=self._maxtasks)
            nodes.append(self._local)
        slots = self._open_nodes(nodes)
        self._slots = slots
        self._remote = [node for node in nodes if node.label not in self._down and node is not self._local]
        warn_down(nodes, self._down)
        if not self._slots:
            why = "; ".join(f"{label}: {reason}" for label, reason in self._down.items())
            refused = self._errors and all(isinstance(e, AuthenticationError) for e in self._errors)
            kind = AuthenticationError if refused else ConnectionLostError
            error = kind(f"ParallelPool has no usable node ({why})")
            self._stop_nodes()
            raise error  # the pool is broken by it (AbstractWorkerPool._start_failed)
        for slot in slots:
            slot.handle([])  # what came with the handshake
        self._connector = Connector(weak_call(self._wake_manager), timeout=max(self.server_timeout, 2.0))
        self._start_manager((slot.sock, slot) for slot in self._slots)

    def _parse_specs(self, specs: Iterable[str | RemoteHost] | None = None) -> list[Node]:
        nodes = []
        for spec in self._server_specs if specs is None else specs:
            node = parse_server(
                spec,
                secret=self._secret,
                python=self._python,
                workers=self._server_workers,
                ssh_config=self._ssh_config,
                max_tasks=self._maxtasks,
            )
            self._spec_of[node] = spec
            nodes.append(node)
        return nodes

    def _open_nodes(self, nodes: list[Node]) -> list[Slot]:
        slots, down, errors = open_nodes(nodes, self._nodes)
        self._down.update(down)
        self._errors.extend(errors)
        return slots

    def _switch_servers(self) -> None:
        """Reassigned ``servers``: close the old servers' connections, start the new ones."""
        with self._start_lock:
            if not self._servers_changed or self._connector is None:
                return
            self._servers_changed = False
            kept = [node for node in self._remote if self._spec_of.get(node) in self._server_specs]
            known = [self._spec_of[node] for node in kept]
            nodes = self._parse_specs(spec for spec in self._server_specs if spec not in known)
            for node in nodes:
                self._down.pop(node.label, None)
            slots = self._open_nodes(nodes)
            with self._dispatch_lock:
                old = [node for node in self._remote if node not in kept]
                self._remote = kept + [node for node in nodes if node.label not in self._down]
                for slot in slots:
                    self._adopt(slot)
                for slot in [slot for slot in self._slots if slot.node in old]:
                    self._reap(slot, "its server was replaced (ParallelPool.servers was reassigned)")
                self._check_alive("no server is left after ParallelPool.servers was reassigned")
            warn_down(nodes, self._down)
            stop_nodes(old)
            for node in old:
                self._spec_of.pop(node, None)
            self._wake_manager()

    def _timed_out(self, batch: Batch) -> None:
        with self._slot_lock:
            for slot in self._slots:
                if slot.batch is batch:
                    self._stopping.add(slot)
        self._wake_manager()

    # -------------------------------------------------------- the manager

    def _handle(self, ready: list[Any]) -> None:
        self._take_connections()
        with self._slot_lock:  # a caller that read a forged frame left the slot to us
            ready = [*ready, *(slot for slot in self._slots if slot.forged and slot not in ready)]
        for slot in ready:
            if slot.loan is not None:
                continue  # its replies are its borrower's (an event the selector saw before the loan)
            if slot in self._slots and not self._service(slot):
                self._reap(slot, "the connection to its server was lost")
            elif slot.forged:  # a man in the middle: that node is not to be trusted again
                self._node_down(slot.node, "a frame on its connection was not the server's (tampered with)")
                for other in [s for s in self._slots if s.node is slot.node]:
                    self._reap(other, "its connection was tampered with")
        self._heartbeat()
        self._stop_slots()

    def _service(self, slot: Slot) -> bool:
        """Send what waits for ``slot``'s socket and handle what came; False if it is gone."""
        try:
            if slot.outbox and not slot.flush():
                self._want_write(slot, False)
            bodies = slot.receive()
        except wire.TagError:
            slot.forged = True
            return True
        except (EOFError, OSError):
            return False
        return slot.handle(bodies)

    def _channels(self, worker: Slot) -> tuple[int, ...]:
        # Lent to the caller waiting for its reply, who reads it itself, without
        # handing it across threads; not while part of the batch waits to go out.
        return () if worker.outbox else (worker.sock.fileno(),)

    def _watch(self, worker: Slot, watched: bool) -> None:
        # Its socket's end is its death too: watched whenever it is not lent (and not gone:
        # the manager may have dropped a lent connection whose end it saw first).
        selector = self._selector
        if selector is None or (watched and worker not in self._slots):
            return
        try:  # (twice per pipe: no contextlib.suppress)
            if watched:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if worker.outbox else 0)
                selector.register(worker.sock, events, worker)
            else:
                selector.unregister(worker.sock)
        except (KeyError, ValueError, OSError):  # as it is already, or closed
            pass

    def _take_reply(self, worker: Slot) -> None:
        if worker not in self._slots:
            return  # dropped by the manager meanwhile
        try:
            bodies = worker.receive()
        except wire.TagError:
            bodies = None
        except (EOFError, OSError):
            return  # its end: the manager's to handle, as it watches the slot again
        if bodies is None or not worker.handle(bodies):
            worker.forged = True  # not the server's, or not this protocol: untrustworthy
            self._wake_manager()
        elif worker.batch is None:
            self._dispatch_to([worker])  # its next batch, from this thread

    def _want_write(self, slot: Slot, write: bool) -> None:
        selector = self._selector
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        if selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                selector.modify(slot.sock, events, slot)

    def _heartbeat(self) -> None:
        """Ping servers silent while they owe an answer; lose those silent too long."""
        now = time.monotonic()
        with self._slot_lock:
            slots = list(self._slots)
        frozen = {slot.node for slot in slots if slot.silence(now) > self.server_timeout}
        why = f"its server did not answer for {self.server_timeout:g} s (frozen or unreachable)"
        for slot in slots:
            if slot.node in frozen:
                if slot in self._slots:
                    self._reap(slot, why)
            elif slot.ping_due(now, min(1.0, self.server_timeout / 4)):
                with contextlib.suppress(OSError):  # if it is gone, the manager sees its end
                    if slot.send(wire.pack_ping()):
                        self._want_write(slot, True)

    def _stop_slots(self) -> None:
        """Close the connections running timed-out or interrupted tasks, and open new ones."""
        with self._slot_lock:
            self._stopping.update(self._doomed_workers(self._slots))
            stopping, self._stopping = self._stopping, set()
        for slot in stopping:
            if slot in self._slots:
                self._reap(slot, "its connection was closed to stop a task", stopped=True)

    def _staff(self) -> None:
        """Take the connections ready; ask for local ones so that ``nodes`` of them serve."""
        self._take_connections()
        if self._closing or self._connector is None:
            return
        with self._slot_lock:
            local = [slot for slot in self._slots if isinstance(slot.node, LocalNode)]
        want = self.nodes
        if want and self._local is None:
            self._local = LocalNode(want, max_tasks=self._maxtasks)
        if self._local is not None and self._local.label not in self._down:
            for _ in range(want - len(local) - self._connector.pending(self._local)):
                self._connector.request(self._local)
        for slot in local[want:]:
            if slot.batch is None:
                self._forget(slot)

    def _take_connections(self) -> None:
        """Adopt the connections the connector opened; drop the nodes it could not reach."""
        if self._connector is None:
            return
        for node, outcome in self._connector.ready():
            if isinstance(outcome, Connection):
                if self._killing or not self._serves(node):
                    outcome.sock.close()
                else:
                    self._adopt(Slot(node, outcome))
                continue
            if not isinstance(outcome, ServerBusy) and self._serves(node):
                self._node_down(node, why(outcome))
        self._check_alive("no server could be reached")

    def _node_down(self, node: Node, reason: str) -> None:
        """Use ``node`` no more, with a warning saying why (once)."""
        if node.label not in self._down:
            self._down[node.label] = reason
            warn_user(
                f"ParallelPool: server {node.label} is lost: {reason}; "
                "its share of the work goes to the other nodes"
            )

    def _serves(self, node: Node) -> bool:
        return node is self._local or node in self._remote

    def _adopt(self, slot: Slot) -> None:
        with self._slot_lock:
            self._slots.append(slot)
        self._add_channel(slot.sock, slot)
        if slot.leftover and not slot.handle([]):
            self._reap(slot, "the connection to its server was lost")

    def _forget(self, slot: Slot, *, close: bool = True) -> None:
        with self._slot_lock:
            if slot in self._slots:
                self._slots.remove(slot)
        self._remove_channel(slot.sock)
        if close:  # else the caller hands it over to the connector (_reap)
            slot.close()

    def _ready_workers(self) -> list[Slot]:
        with self._slot_lock:
            return [slot for slot in self._slots if slot.batch is None]

    def _next_batch(self) -> Batch | None:
        return self._orphans.pop(0) if self._orphans else self._take_batch()

    def _batches_waiting(self) -> bool:
        return bool(self._orphans) or super()._batches_waiting()

    def _transmit(self, slot: Slot, star: bool, key: int, function: bytes | None, data: wire.Parts) -> None:
        slot.heard = time.monotonic()  # silence counts from now
        function = function or b""
        # If the connection is gone, the manager sees its end and re-runs the batch.
        with contextlib.suppress(OSError):
            if slot.send(wire.pack_run(slot.token, wire.pack_batch(key, star, function, data))):
                self._want_write(slot, True)

    def _reap(self, slot: Slot, reason: str, *, stopped: bool = False) -> None:
        """``slot``'s connection is gone or closed: re-run or lose its batch, ask for a replacement.

        A batch whose connection was closed to stop it (``stopped``) is lost.
        One whose server went away is no fault of its tasks: it runs again,
        uncharged, on the next idle worker of any node.
        """
        self._forget(slot, close=False)
        batch, slot.batch = self._running(slot), None  # (it may be on loan)
        if batch is not None:
            again = None if stopped or self._closing or self._killing else rerun(self._lock, batch)
            if again is None:
                batch.lose(f"{reason} ({slot.node.label})")
            else:
                self._orphans.append(again)
        node, connector = slot.node, None if self._killing else self._connector
        draining = self._closing and self._draining
        if connector is None or draining or not self._serves(node) or node.label in self._down:
            slot.close()
        else:
            connector.request(node, replaces=slot.hang_up())
        if connector is not None:
            self._check_alive(reason)

    def _check_alive(self, reason: str) -> None:
        """Break the pool when no connection is left and none is being opened."""
        with self._slot_lock:
            alive = bool(self._slots)
        if alive or self._killing or (self._connector is not None and self._connector.pending()):
            return
        lost = "; ".join(f"{label}: {why}" for label, why in self._down.items()) or reason
        error = WorkerLostError(f"ParallelPool: every server is gone ({lost})")
        orphans, self._orphans = self._orphans, []
        for batch in orphans:
            batch.lose(f"{reason} ({lost})")
        self._break(error)

    def _stop_all(self) -> None:
        if self._connector is not None:
            self._connector.close()
        orphans, self._orphans = self._orphans, []
        for batch in orphans:
            batch.lose("the pool was terminated before it could run again")
        with self._slot_lock:
            slots, self._slots = list(self._slots), []
        for slot in slots:
            slot.shut()  # a caller waiting on it, on loan, wakes and gives it back
        self._await_loans()
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
        stop_nodes(nodes)


def _copied_parts(obj: Any, name: str) -> wire.Parts:
    """A batch's arguments as the pieces of one payload (``dumps_parts``), its large
    buffers copied now: the batch may wait for a worker while the caller goes on
    and changes its arrays, and the worker must see them as they were at the call. (The
    pickle stream is a view of immutable bytes: it stays as it is.)"""
    return tuple(
        bytes(part) if type(part) is memoryview and type(part.obj) is not bytes else part
        for part in dumps_parts(obj, name=name)
    )
