"""``DaskPool``: the manymap pool contract on a Dask cluster.

How it works. The scheduling is manymap's own
(:class:`manymap.launcher.lowlevel.EngineWorkerPool`): one manager thread hands each
ready batch to a Dask worker with a free thread, as one Dask task pinned to
that worker (``workers=[address]``, ``allow_other_workers=False``,
``pure=False``, ``retries=0``), and never has more batches running than
``nodes``; so a task's timeout counts its own run time, not time queued in
Dask, and the pool knows which worker runs what.

- A Dask round trip costs 10 ms or more. So (``queue_ahead``, on by
  default) a busy worker also holds the next batch of its map in its Dask
  queue, when that map has no timeout and both batches have several tasks:
  it starts the moment the batch before it ends, once that batch's result
  cannot be lost with the worker (``_worker._secure``), so that if it kills
  the worker it takes only itself. A Dask worker runs the tasks it holds in
  the order they came, unless one waits for data; so a worker running a
  batch that waits for a shared payload is sent nothing to hold.
- A batch hands a small outcome over through the scheduler as it ends
  (``_worker._hand_over``, read back by :func:`_on_handed_over`): the pool
  need not fetch it.

- The function and the data are manymap.serialize payloads (bytes),
  encoded in the caller's thread, so what cannot be serialized fails before
  anything is sent; Dask only carries bytes to :func:`_worker.run_batch`.
  The function goes to a worker with its first batch and is cached there per
  pool.
- Dask reports through callbacks: a finished future, a failed one, a worker
  added or removed (the scheduler's ``"all"`` event topic). They only queue
  an event for the manager (the launcher's ``EngineInbox``), or hand a
  finished future to the pool's fetch threads (``_fetch.py``), which never
  block Dask's shared callback thread.
- A worker removed while it runs a batch loses that batch
  (``WorkerLostError``, or a retry with ``retries``); the embedded cluster's
  scheduler allows no failures, so Dask never re-runs it silently.
- A task past its timeout: on the embedded cluster its worker is killed
  through a pidfd (its reaper kills its process group, its nanny starts a
  new worker); on a cluster the pool
  joined, the worker is restarted through its nanny (Dask cannot cancel a
  running task).
- The scheduler lost: the pool breaks with ``ConnectionLostError`` naming the
  scheduler's address.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import uuid

from manymap.launcher import AbstractWorkerPool, ConnectionLostError
from manymap.launcher.lowlevel import (
    Batch,
    EngineInbox,
    EngineOutcome,
    EngineWorker,
    EngineWorkerPool,
    Job,
    TaskFailure,
)
from manymap.pools.dask._batched import send_soon
from manymap.pools.dask._fetch import Fetcher
from manymap.pools.dask._shared import SHARE_MIN_SIZE, SharedBatch, SharedData, digest, encode_batches
from manymap.serialize import FunctionPayloads, loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["DaskPool"]

#: What the embedded cluster's scheduler and workers are pinned to.
EMBEDDED_CONFIG: dict[str, Any] = {
    "distributed.scheduler.allowed-failures": 0,  # a lost task is ours to retry, not Dask's
    "distributed.worker.daemon": False,  # a task may start processes of its own
    "distributed.worker.multiprocessing-method": "forkserver",  # fast worker (re)starts
    "distributed.worker.profile.enabled": False,  # its sampler (every 10 ms) slows the tasks
    # Periodic chores that cost an idle 2-worker cluster 66 ms of CPU a second, 24 ms with
    # these: the check that the event loops are not blocked (every 20 ms) and the system
    # monitor behind the dashboard's host graphs (every 500 ms).
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}
_CLOSE_TIMEOUT = 10  # seconds Dask gets to close a client or a cluster


class DaskPool(EngineWorkerPool):
    """A pool whose workers are a Dask cluster's.

    Args:
        nodes: with no cluster given, the number of single-threaded worker
            processes of an embedded ``LocalCluster`` on 127.0.0.1 (default:
            the number of cores); on a joined cluster, the most tasks in
            flight at once (default: every thread of the cluster).
        address: the address of a running Dask scheduler to join
            (``"tcp://host:8786"``, ``"tls://..."``).
        cluster: a Dask cluster object to join (an ``SSHCluster``, a
            dask-jobqueue cluster, a ``LocalCluster`` of your own).
        scheduler_file: a Dask scheduler file to join.
        security: a ``distributed.security.Security`` for the connection
            (TLS), or ``None``.
        **options: default task options: ``chunksize``, ``timeout``,
            ``retries``, ``progress``.

    The pool stops only what it started: the embedded cluster, never a
    scheduler or workers it joined. On a joined cluster a timed-out task's
    worker is restarted through its nanny, which costs that worker its
    memory (Dask's data on it included).
    """

    node_aliases: ClassVar[tuple[str, ...]] = ("ncpus",)
    #: A task function, or an out-of-band buffer of the arguments (a NumPy array,
    #: a ``pickle.PickleBuffer``) found in several batches, of this many bytes or
    #: more goes to the cluster once per map as a Dask task of its own (its
    #: workers fetch it from each other), not with every batch.
    share_min_size: ClassVar[int] = SHARE_MIN_SIZE
    #: On: a held batch first makes sure that the result of the batch before it
    #: cannot be lost with its worker (``_worker._secure``), so killing its
    #: worker takes only itself.
    queue_ahead = True

    def __init__(
        self,
        nodes: int | None = None,
        *,
        address: str | None = None,
        cluster: Any = None,
        scheduler_file: str | None = None,
        security: Any = None,
        **options: Any,
    ) -> None:
        given = [name for name, value in (("address", address), ("cluster", cluster)) if value is not None]
        if scheduler_file is not None:
            given.append("scheduler_file")
        if len(given) > 1:
            raise ValueError(
                f"DaskPool() takes one of address, cluster, scheduler_file; got {', '.join(given)}"
            )
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a string such as 'tcp://127.0.0.1:8786', got {address!r}")
        if security is not None and not given:
            raise ValueError(
                "DaskPool(security=...) applies to a cluster it joins (address, cluster or "
                "scheduler_file); the embedded cluster listens on 127.0.0.1 only"
            )
        if (
            address is not None
            and address.startswith("tls://")
            and security is None
            and not _tls_configured()
        ):
            raise ValueError(
                f"DaskPool(address={address!r}) needs security=: a distributed.security.Security "
                "with the cluster's TLS credentials (CA file, client certificate and key), "
                "or those set in Dask's configuration (distributed.comm.tls)"
            )
        self._external = bool(given)
        self._follow = self._external and nodes is None and not options.get("ncpus")
        super().__init__(nodes, **options)
        self._address = address
        self._cluster = cluster
        self._scheduler_file = scheduler_file
        self._security = security
        self._client: Any = None
        self._owned: Any = None  # the embedded LocalCluster
        self._scheduler_address = address or "?"
        self._pool_id = uuid.uuid4().hex
        self._functions = FunctionPayloads()
        self._shared = SharedData(self._pool_id)
        self._function_digests: dict[int, str] = {}  # key of a large function payload -> its hash
        self._futures: dict[int, Any] = {}
        self._waiting: set[int] = set()  # tokens of tasks that take shared payloads (Dask futures)
        self._probes: dict[str, Any] = {}
        self._fetcher: Any = None
        self._pidfds: dict[str, int] = {}  # embedded workers: address -> pidfd
        self._restarts: list[threading.Thread] = []  # joined workers being restarted

    # ----------------------------------------------------------------- size

    @property
    def nodes(self) -> int:
        """Embedded: the number of worker processes; joined: the most tasks in flight
        (every thread of the cluster unless set)."""
        if self._follow and getattr(self, "_engine_workers", None):
            return sum(worker.threads for worker in self._engine_workers.values())
        value: int = AbstractWorkerPool.nodes.fget(self)  # type: ignore[attr-defined]
        return value

    @nodes.setter
    def nodes(self, value: int | None) -> None:
        self._follow = False
        AbstractWorkerPool.nodes.fset(self, value)  # type: ignore[attr-defined]

    @property
    def scheduler_address(self) -> str | None:
        """The address of the scheduler in use, once started."""
        return None if self._client is None else self._scheduler_address

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, if it runs."""
        if self._client is None:
            return None
        with contextlib.suppress(Exception):
            link: str = self._client.dashboard_link
            return link
        return None

    def __repr__(self) -> str:
        where = "embedded" if not self._external else (self._address or "joined")
        return f"<DaskPool nodes={self.nodes} {where} {self._state}>"

    def _pickled_config(self) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        args, kwargs, attributes = super()._pickled_config()
        cluster = kwargs.get("cluster")
        if cluster is not None:  # a cluster object does not travel: its scheduler's address does
            kwargs = {name: value for name, value in kwargs.items() if name != "cluster"}
            kwargs["address"] = cluster.scheduler_address
            security = kwargs.get("security") or getattr(cluster, "security", None)
            if security is not None:
                kwargs["security"] = security
        return args, kwargs, attributes

    # ----------------------------------------------------- serialization

    def _encode(self, job: Job, batches: list[Batch]) -> None:
        if job.payload is None:
            job.payload = self._functions.payload(job.function)
        if len(job.payload) >= self.share_min_size:  # hashed here, not on the manager thread
            key = self._functions.key(job.payload)
            if key not in self._function_digests:
                if len(self._function_digests) >= 64:
                    self._function_digests.clear()
                self._function_digests[key] = digest(job.payload)
        encode_batches(batches, job.kwargs, job.star, self._shared.__contains__, self.share_min_size)

    def _engine_function_key(self, job: Job) -> Any:
        return self._functions.key(job.payload)

    def _engine_decode(self, result: Any) -> EngineOutcome:
        from manymap.pools.dask import _worker  # (imports distributed: only once a pool runs)

        if result[0] == "error":  # Dask could not run the engine task at all
            return EngineOutcome(None, {0: TaskFailure(result[1], "")})
        if result[0] == _worker.MISSING:
            return EngineOutcome(missing_function=True)
        _, payload, duration, _pid = result
        values, failures = loads(payload)
        return EngineOutcome(values, failures, duration)

    # ------------------------------------------------------- the engine

    def _engine_open(self) -> list[EngineWorker]:
        import distributed

        from manymap.pools.dask import _worker

        self._fetcher = Fetcher(self._inbox, _record)

        client_class: Any = distributed.Client  # untyped in distributed
        if self._external:
            kwargs: dict[str, Any] = {"set_as_default": False}
            if self._security is not None:
                kwargs["security"] = self._security
            if self._scheduler_file is not None:
                kwargs["scheduler_file"] = self._scheduler_file
                target: Any = None
            else:
                target = self._cluster if self._cluster is not None else self._address
            try:
                self._client = client_class(target, **kwargs)
            except OSError as error:
                where = self._address or self._scheduler_file or repr(self._cluster)
                raise ConnectionLostError(
                    f"DaskPool cannot reach the Dask scheduler at {where}: {error}"
                ) from error
        else:
            self._owned = _start_cluster(self.nodes)
            # (results straight from the workers, not through the scheduler: all on 127.0.0.1)
            self._client = client_class(self._owned, set_as_default=False, direct_to_workers=True)
            self._client.register_plugin(_worker.OwnedWorker(os.getpid()))
        self._scheduler_address = self._client.scheduler.address
        self._client.subscribe_topic("all", functools.partial(_on_event, self._inbox))
        self._client.subscribe_topic(
            _worker.HANDED_OVER, functools.partial(_on_handed_over, self._inbox, self._fetcher, self._pool_id)
        )
        return _identified(self._client.run(_worker.identify, on_error="return"))

    def _engine_submit(self, worker: EngineWorker, token: int, batch: Batch, function: bool) -> None:
        client = self._client
        if client is None or client.status not in ("running", "newly-created"):
            self._lost_scheduler()
            raise ConnectionLostError(f"the Dask scheduler at {self._scheduler_address} is not connected")
        from manymap.pools.dask import _worker

        job = batch.job
        sent: Any = None
        if function:
            sent = job.payload
            if len(sent) >= self.share_min_size:  # on the cluster once, fetched by each worker
                name = self._function_digests.get(self._functions.key(sent)) or digest(sent)
                sent = self._shared.future(client, name, sent)
        data, buffers = batch.payload, None
        if isinstance(data, SharedBatch):
            buffers = [self._shared.future(client, name, buffer) for name, buffer in data.buffers]
            data = data.data
        future = client.submit(
            _worker.run_batch,
            self._pool_id,
            self._functions.key(job.payload),
            sent,
            data,
            job.star,
            buffers,
            # held (queue_ahead): the engine tasks it waits behind, whose results it hands over
            tuple(self._key(running) for running in worker.running) if token in worker.queued else (),
            key=self._key(token),
            workers=[worker.ident],
            allow_other_workers=False,
            pure=False,
            retries=0,
        )
        self._futures[token] = future
        send_soon(client)
        if buffers or not isinstance(sent, (bytes, type(None))):
            self._waiting.add(token)
        future.add_done_callback(functools.partial(self._fetcher.task_done, token))

    def _key(self, token: int) -> str:
        """The Dask key of engine task ``token``."""
        return f"manymap-{self._pool_id[:8]}-{token}"

    def _engine_release(self, token: int) -> None:
        self._futures.pop(token, None)  # dropping the future releases the task in Dask
        self._waiting.discard(token)
        if self._fetcher is not None:
            self._fetcher.finished.discard(token)  # (handed: its done-callback takes it out)

    def _engine_in_order(self, token: int) -> bool:
        return token in self._futures and token not in self._waiting

    def _engine_finished(self, token: int) -> bool:
        # Its done-callback may not have run yet, and a failed fetch of its result
        # turns the status back to pending: either says it finished.
        if self._fetcher is not None and token in self._fetcher.finished:
            return True
        future = self._futures.get(token)  # ("lost": it finished, then its data was lost)
        return future is None or future.status in ("finished", "lost")

    def _engine_stop_worker(self, worker: EngineWorker) -> None:
        if self._owned is not None:
            # Through its pidfd, never its pid (pids are reused). Its reaper then
            # kills its process group, and its nanny starts a new worker.
            pidfd = self._pidfds.get(worker.ident)
            if pidfd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            return
        restart = threading.Thread(
            target=_restart_worker,
            args=(self._client, worker.ident),
            name="manymap-dask-restart",
            daemon=True,
        )
        self._restarts = [thread for thread in self._restarts if thread.is_alive()]
        self._restarts.append(restart)
        restart.start()

    def _engine_scale(self, nodes: int) -> None:
        if self._owned is not None:
            self._owned.scale(nodes)

    def _engine_event(self, kind: str, *args: Any) -> None:
        if kind == "appeared":
            self._probe(args[0])
        elif kind == "cancelled":
            if args[0] in self._futures:  # not released by us: the scheduler dropped it
                self._lost_scheduler()
        else:
            super()._engine_event(kind, *args)

    def _probe(self, address: str) -> None:
        if address in self._engine_workers or address in self._probes or self._client is None:
            return
        from manymap.pools.dask import _worker

        future = self._client.submit(
            _worker.identify,
            key=f"manymap-probe-{self._pool_id[:8]}-{uuid.uuid4().hex[:8]}",
            workers=[address],
            allow_other_workers=False,
            pure=False,
        )
        self._probes[address] = future
        future.add_done_callback(functools.partial(self._fetcher.probe_done, address))

    def _joined(self, worker: EngineWorker) -> None:
        self._probes.pop(worker.ident, None)
        if self._owned is not None and worker.ident not in self._pidfds:
            try:  # a worker of ours, on this host: a handle on it that no reused pid can take
                self._pidfds[worker.ident] = os.pidfd_open(worker.info)
            except OSError:  # gone already: its removal is on its way
                return
        super()._joined(worker)

    def _left(self, ident: str, reason: str) -> None:
        # (What its tasks started dies with it: its reaper kills its process group.)
        self._probes.pop(ident, None)
        pidfd = self._pidfds.pop(ident, None)
        if pidfd is not None:
            os.close(pidfd)
        super()._left(ident, reason)

    def _lost_scheduler(self) -> None:
        self._inbox.put(
            "broken",
            ConnectionLostError(f"DaskPool lost its Dask scheduler at {self._scheduler_address}"),
        )

    def _engine_close(self, *, kill: bool) -> None:
        client, self._client = self._client, None
        owned, self._owned = self._owned, None
        self._futures.clear()
        self._waiting.clear()
        self._probes.clear()
        self._shared.clear()
        # A restart asked of a joined cluster ends before its client closes (closing
        # it would cut the restart short): the pool leaves the cluster whole.
        restarts, self._restarts = self._restarts, []
        for restart in restarts:
            restart.join(_CLOSE_TIMEOUT)
        if client is not None:
            from manymap.pools.dask import _worker

            for topic in ("all", _worker.HANDED_OVER):  # ("all": its own leaving is no news to it)
                with contextlib.suppress(Exception):
                    client.unsubscribe_topic(topic)
            with contextlib.suppress(Exception):
                client.close(timeout=_CLOSE_TIMEOUT)
        pidfds, self._pidfds = self._pidfds, {}
        for pidfd in pidfds.values():
            os.close(pidfd)
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            fetcher.close()
        if owned is not None:
            with contextlib.suppress(Exception):
                owned.close(timeout=_CLOSE_TIMEOUT)


def _start_cluster(nodes: int) -> Any:
    """An embedded LocalCluster: ``nodes`` single-threaded worker processes on
    127.0.0.1, its dashboard (if bokeh is installed) on a free loopback port."""
    import distributed

    import dask

    local_cluster: Any = distributed.LocalCluster  # untyped in distributed
    with dask.config.set(EMBEDDED_CONFIG):
        return local_cluster(
            n_workers=nodes,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )


def _tls_configured() -> bool:
    """Whether Dask's configuration names a CA for TLS (what ``Security()`` reads)."""
    import dask

    return bool(dask.config.get("distributed.comm.tls.ca-file", None))


def _record(address: str, pid: int, host: str, threads: int) -> EngineWorker:
    return EngineWorker(address, f"{address}[pid {pid}]", host, threads, info=pid)


def _identified(found: dict[str, Any]) -> list[EngineWorker]:
    """The workers that answered the pool's ``identify`` as it opened (``found``: by address,
    the answer or the exception). One whose connection closed (an ``OSError``, Dask's
    ``CommClosedError``) left the cluster as the pool started, say killed by the pool
    before: it is left out, and the scheduler's events tell of its replacement. Any
    other failure is the pool's start's."""
    workers = []
    for address, info in found.items():
        if isinstance(info, OSError):
            continue
        if isinstance(info, BaseException):
            raise info
        workers.append(_record(address, *info))
    return workers


def _on_event(inbox: EngineInbox, event: Any) -> None:
    """A scheduler event (Dask's loop thread): workers added and removed."""
    _, message = event
    if not isinstance(message, dict):
        return
    action = message.get("action")
    if action == "remove-worker" and "worker" in message:
        inbox.put("left", message["worker"], f"Dask removed worker {message['worker']}")
    elif action == "add-worker" and "worker" in message:
        inbox.put("appeared", message["worker"])


def _on_handed_over(inbox: EngineInbox, fetcher: Fetcher, pool: str, event: Any) -> None:
    """A result a batch handed over (Dask's loop thread, before the news that its
    task ended): the outcome of its engine task, not to be fetched, if of this
    pool (``_worker._hand_over``)."""
    _, message = event
    with contextlib.suppress(TypeError, ValueError):
        owner, key, result = message
        if owner == pool:
            token = int(key.rsplit("-", 1)[1])
            fetcher.handed.add(token)
            inbox.put("done", token, tuple(result))


def _restart_worker(client: Any, address: str) -> None:
    """Replace a worker of a joined cluster whose task is past its timeout (a helper
    thread): its nanny kills its process at once and starts a new one. Dask's own
    ``restart_workers`` first asks the busy worker to close and waits for the
    nanny's kill timeout (about 8 s end to end here); it is the fallback when the
    nanny cannot run the kill (no nanny, or one without this package)."""
    from manymap.pools.dask import _worker

    try:
        client.run(_worker.kill_worker, workers=[address], nanny=True)
    except Exception:  # no nanny, or one that cannot: Dask's own restart
        with contextlib.suppress(Exception):
            client.restart_workers([address], timeout=_CLOSE_TIMEOUT, raise_for_error=False)
