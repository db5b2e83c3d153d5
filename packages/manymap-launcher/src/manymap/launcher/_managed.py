"""``ManagedWorkerPool``: the base of pools whose workers one manager thread owns.

``ProcessPool`` (worker processes on pipes) and
``manymap.pools.rpc.ParallelPool`` (connections to RPC servers) work the
same way, and this is that way, once:

- One manager thread per pool waits on every worker channel at once (a
  selector) plus a :class:`Doorbell`, a self-pipe that other threads ring
  when work is queued, a task must be stopped, or the pool resizes or closes.
- Each round (:meth:`ManagedWorkerPool._manage_once`) it staffs (starts or
  retires workers to match ``nodes``), hands ready batches to idle workers,
  waits, then handles what is ready: results, deaths, stop requests.
- A caller that queued work hands it to an idle worker from its own thread
  when the manager is not busy: one thread hand-off less per call, with
  Ctrl-C held until the batch is taken and sent (:func:`interrupts_deferred`).
  A caller blocked on a call of one task (``pipe``, ``apply``) does not even
  queue it when a worker is ready and no batch waits: it sends it straight
  to that worker (:meth:`ManagedWorkerPool._send_now`). A pool that sets
  ``_calls_direct`` does not even make a job of such a call unless it must
  (:meth:`ManagedWorkerPool._call`, :class:`_Call`).
- A caller that blocks on its call (``pipe``, ``apply``, ``map``...) takes
  the reply to its first batch itself, another hand-off less: the worker it
  sends that batch to is *lent* to it (:meth:`ManagedWorkerPool._wait`). The
  manager does not wait on a lent worker's replies: a pool that lends
  watches a worker's reply channel only while the manager is owed a reply
  there (:meth:`~ManagedWorkerPool._watch`), and a batch sent to a blocked
  caller's own worker is not. The caller waits on the reply channel and the
  death signal, looking without sleeping for ``SPIN`` first, for at most
  ``_LEASE`` seconds; the pool's :meth:`~ManagedWorkerPool._take_reply`
  handles the reply. Then it gives the worker back, and the manager sees
  whatever the caller did not handle (a death, a late reply). A death the
  manager sees first waits, muted, until the worker is given back.
- Worker records change only under ``_dispatch_lock``, which the manager
  holds except while it waits.
- A bug in the manager fails the pool's work (the pool breaks); it never
  leaves a caller waiting.
- The manager thread holds the pool only through a weak reference while it
  waits, so that a pool nobody refers to any more is garbage-collected, as
  CPython's executors are. Its ``__del__`` terminates it and hands it to the
  manager thread, which stops the workers (the object lives on until then),
  closes the doorbell and lets it go.

A subclass supplies the worker side: :meth:`~ManagedWorkerPool._staff`,
:meth:`~ManagedWorkerPool._dispatch` (unless it ships batches, below),
:meth:`~ManagedWorkerPool._handle` and
:meth:`~ManagedWorkerPool._stop_all`, and registers its channels with
:meth:`~ManagedWorkerPool._add_channel`.

A pool whose workers are other processes also ships its batches the one way
this base does (``_shipping.py``): it sets ``_codec`` (a
``manymap.serialize.PoolCodec``), so that :meth:`~ManagedWorkerPool._encode`
serializes in the caller's thread; its records of workers are
:class:`ManagedWorker` s; it names the ready ones in
:meth:`~ManagedWorkerPool._ready_workers`, which ``_dispatch`` hands to
:meth:`~ManagedWorkerPool._dispatch_to`, whose
:meth:`~ManagedWorkerPool._send` gives each batch a token, decides whether
the function goes along, and calls the pool's
:meth:`~ManagedWorkerPool._transmit`, which alone knows how the worker is
reached; a reply settles the batch through :meth:`ManagedWorker.settle`.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import os
import select
import selectors
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence

from manymap.launcher._arguments import check_callable
from manymap.launcher._batch import Batch
from manymap.launcher._condition import Condition
from manymap.launcher._eager_job import EagerJob
from manymap.launcher._errors import SerializationError, add_note
from manymap.launcher._job import Job
from manymap.launcher._pool import AbstractWorkerPool
from manymap.launcher._results import CallResult, wait_for
from manymap.launcher._shipping import BatchCodec, ManagedWorker, for_all
from manymap.launcher._spin import SPIN, spin
from manymap.launcher._task import TaskFailure

__all__ = ["Doorbell", "ManagedWorkerPool", "interrupts_deferred"]

_TICK = 1.0  # seconds; the manager re-checks its state at least this often
_LEASE = 0.05  # seconds a caller may wait on a lent worker's reply before the manager takes over
# What a caller waits on a lent worker with: poll(2) needs no descriptor of its own,
# and the bare object is a microsecond a look cheaper than a selectors.PollSelector.
_poll: Callable[[], Any] | None = getattr(select, "poll", None)

# The C module behind ``signal``. Its functions skip the enum conversions of
# ``signal.signal``/``getsignal``, which raise and catch a ValueError for a
# handler that is a function: several microseconds per call, three calls per
# direct dispatch.
_raw_signal: Any = sys.modules.get("_signal", signal)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any, Generic, TypeVar

    from manymap.launcher._futures import AsyncResult

    W = TypeVar("W", bound=ManagedWorker)
    T = TypeVar("T")
else:
    from manymap.launcher._generic import Generic  # ProcessPool(ManagedWorkerPool[_Worker]) subscripts it

    W = "W"


class Doorbell:
    """A non-blocking self-pipe: :meth:`ring` from anywhere, select on :meth:`fileno`."""

    def __init__(self) -> None:
        self.fds = os.pipe()
        for fd in self.fds:
            os.set_blocking(fd, False)
        self._closed = False

    def fileno(self) -> int:
        """The end to wait on."""
        return self.fds[0]

    def ring(self) -> None:
        """Wake the waiter; a full pipe already has a ring pending, a closed one a gone pool."""
        if not self._closed:
            with contextlib.suppress(OSError):
                os.write(self.fds[1], b"\0")

    def drain(self) -> None:
        """Take every pending ring."""
        try:
            while os.read(self.fds[0], 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends (once)."""
        if not self._closed:
            self._closed = True
            for fd in self.fds:
                os.close(fd)


class ManagedWorkerPool(AbstractWorkerPool, Generic[W]):
    """A pool whose workers one manager thread owns (see the module's text).

    Subclasses call :meth:`_start_manager` from ``_start_workers`` and
    implement the abstract methods below; everything else of the scheduling
    core (stopping, joining, resizing, waking, interrupts) is here, and so is
    shipping batches to workers that are other processes (``W``: the pool's
    record of a worker).
    """

    _codec: BatchCodec | None = None  # set by a pool that ships batches (see the module's text)
    # Whether a blocked call of one task may be sent straight to a ready worker without
    # a job (:meth:`_call`): for a pool that ships batches and lends its workers, whose
    # _stop_all waits for the loans to end (_await_loans) before it settles what its
    # workers ran, and which reads a lent worker's batch elsewhere only through _running.
    _calls_direct = False

    def __init__(self, nodes: int | None = None, **options: Any) -> None:
        super().__init__(nodes, **options)
        self._manager: threading.Thread | None = None
        self._doorbell: Doorbell | None = None
        self._selector: selectors.BaseSelector | None = None
        self._closing = False
        self._killing = False
        self._doomed: set[Job] = set()  # interrupted jobs whose running tasks must stop
        self._dispatch_lock = threading.Lock()  # guards the worker records
        self._last_rites: list[ManagedWorkerPool[Any]] = []  # the pool, handed to its manager by __del__
        self._tokens = itertools.count(1)  # one per batch sent: a worker's reply names it
        self._loans_ended = Condition(self._dispatch_lock)
        self._on_loan = 0  # workers lent to callers now
        self._lent: set[int] = set()  # the death signals (descriptors) of the workers on loan now
        # those of them the manager saw ready: unwatched until the loan ends
        self._muted: dict[int, selectors.SelectorKey] = {}

    # ----------------------------------------------------- for subclasses

    def _start_manager(self, channels: Iterable[tuple[Any, Any]] = (), *, staff: bool = False) -> None:
        """Start the manager thread, watching ``channels`` (``(fileobj, data)`` pairs) from the start.

        ``staff``: start the first workers (:meth:`_staff`) here, in the calling
        thread, while the manager thread waits for them. For a pool whose workers
        start at once (``ProcessPool`` forks them): the manager would compete with
        the caller for the GIL while it starts them, and a failure to start one
        is raised to the call that started the pool (the manager then stops what
        was started).
        """
        self._closing = self._killing = False
        self._doorbell = Doorbell()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._doorbell.fileno(), selectors.EVENT_READ, None)
        for fileobj, data in channels:
            self._add_channel(fileobj, data)
        self._last_rites = []
        self._manager = threading.Thread(
            target=_manage,
            args=(weakref.ref(self), self._last_rites, self._doorbell),
            name=f"manymap-{type(self).__name__}-{id(self):x}",
            daemon=True,
        )
        if not staff:
            self._manager.start()
            return
        # Started first, while the machine is idle (starting a thread waits until it
        # runs); its first round waits for the dispatch lock.
        with self._dispatch_lock:
            self._manager.start()
            try:
                self._staff()
            except BaseException:
                self._killing = True  # the manager's first round ends it: it stops what started
                raise

    def _add_channel(self, fileobj: Any, data: Any) -> None:
        """Wait on ``fileobj`` too; when it is ready, ``data`` goes to :meth:`_handle`."""
        assert self._selector is not None
        self._selector.register(fileobj, selectors.EVENT_READ, data)

    def _remove_channel(self, fileobj: Any) -> None:
        """Stop waiting on ``fileobj`` (before it is closed)."""
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fileobj)

    def _doomed_jobs(self) -> set[Job]:
        """The interrupted jobs whose running tasks :meth:`_handle` must stop; the ones
        complete since are forgotten (their tasks are stopped or settled)."""
        if not self._doomed:
            return set()
        doomed = set(self._doomed)
        self._doomed -= {job for job in doomed if job.complete}
        return doomed

    def _doomed_workers(self, workers: Iterable[W]) -> list[W]:
        """Those of ``workers`` running tasks of the interrupted jobs (see :meth:`_doomed_jobs`)."""
        if not self._doomed:  # the common case, every manager round
            return []
        doomed = self._doomed_jobs()
        return [worker for worker in workers if worker.batch is not None and worker.batch.job in doomed]

    def _wake_manager(self) -> None:
        """Make the manager run a round now."""
        if self._doorbell is not None:
            self._doorbell.ring()

    @abc.abstractmethod
    def _staff(self) -> None:
        """Start or retire workers so that ``nodes`` of them serve (manager thread, dispatch lock held)."""

    def _dispatch(self) -> None:
        """Hand ready batches to idle workers (dispatch lock held; the manager's or a caller's thread).

        A pool that ships batches needs only :meth:`_ready_workers`; another overrides this.
        """
        self._dispatch_to(self._ready_workers())

    @abc.abstractmethod
    def _handle(self, ready: list[Any]) -> None:
        """Handle the ``data`` of the channels that are ready, then stop the tasks of
        :meth:`_doomed_jobs` (manager thread, dispatch lock held)."""

    @abc.abstractmethod
    def _stop_all(self) -> None:
        """Stop every worker and settle what they ran (manager thread, on its way out)."""

    # -------------------------------------------------- shipping batches

    def _dispatch_to(self, idle: Iterable[W]) -> None:
        """Send the next batch to each of the ``idle`` workers, while there are batches."""
        if self._killing:
            return
        for worker in idle:
            batch = self._next_batch()
            if batch is None:
                return
            self._send(worker, batch)

    def _ready_workers(self) -> Iterable[W]:
        """The workers that may be sent a batch now: idle and ready (a pool that
        ships batches: :meth:`_dispatch` hands them to :meth:`_dispatch_to`)."""
        raise NotImplementedError(f"{type(self).__name__} ships batches: it implements _ready_workers")

    def _next_batch(self) -> Batch | None:
        """The next batch to send: the launcher's queue's (a pool may put others first)."""
        return self._take_batch()

    def _batches_waiting(self) -> bool:
        """Whether :meth:`_next_batch` has a batch to send (a look, nothing taken)."""
        return bool(self._scheduler.queue)

    def _send(self, worker: W, batch: Batch) -> None:
        """Give ``batch`` to the idle ``worker``: a new token, the function if it lacks it."""
        job = batch.job
        if job.stopped():  # cancelled since it was taken: settle it unrun
            batch.lose("its map was stopped before the batch was sent")
            return
        if job.payload is None or batch.payload is None:  # a re-queued part of a lost batch
            try:
                self._encode(job, [batch])
            except SerializationError as error:
                batch.start(worker.name, worker.host)
                batch.finish([None] * len(batch), for_all(TaskFailure.capture(error), len(batch)))
                return
        data, batch.payload = batch.payload, None  # the worker has it now; free the caller's memory early
        worker.batch = batch
        wait = job.wait
        # The caller this batch's worker may be lent to (a worker on loan is sent its
        # next batch by its borrower, who is done with it).
        borrower = (
            wait
            if isinstance(wait, _Wait) and wait.armed and wait.worker is None and worker.loan is None
            else None
        )
        if borrower is not None:
            # Unwatched before its batch goes: the manager must not wake for the reply
            # (on a busy machine the worker may answer before this thread goes on).
            self._watch(worker, False)
        self._write(worker, job.payload, batch.star, data)
        # Started once sent, while the worker computes: nobody handles its reply before
        # the dispatch lock is released.
        batch.start(worker.name, worker.host)
        if borrower is not None:
            channels = self._channels(worker) if _poll is not None else ()
            if channels:
                self._lend(borrower, worker, channels)
                return
        self._watch(worker, True)

    def _write(self, worker: W, payload: bytes, star: bool, data: Any) -> None:
        """Write a batch to ``worker`` under a new token: the function ``payload``
        (if the worker lacks it), then the arguments ``data`` (``_codec.items``')."""
        codec = self._codec
        assert codec is not None, f"{type(self).__name__} sends batches: it sets _codec"
        key = codec.key(payload)
        worker.token = next(self._tokens)
        self._transmit(worker, star, key, payload if codec.must_send(worker.known, key) else None, data)

    def _transmit(self, worker: W, star: bool, key: int, function: bytes | None, data: Any) -> None:
        """Write a batch (numbered ``worker.token``) to ``worker``: run the function
        cached under ``key`` (its payload ``function`` goes first if the worker
        lacks it) over the arguments ``data`` (as ``_codec.items`` encoded them),
        each a tuple of positional arguments if ``star``.

        Called by :meth:`_write`, so only a pool that ships batches needs this.
        A worker that is gone is not an error here: the pool sees it go.
        """
        raise NotImplementedError(f"{type(self).__name__} dispatches with _send: it implements _transmit")

    def _channels(self, worker: W) -> tuple[int, ...]:
        """The descriptors a caller waits on while ``worker`` is lent to it: the one its
        replies come on first, then its death signal if it has one apart (empty: not
        lendable now). A pool that returns them lends its workers to blocked callers
        (see the module's text) and implements :meth:`_take_reply` and :meth:`_watch`."""
        return ()

    def _running(self, worker: W) -> Batch | None:
        """The batch ``worker`` runs (``None``: idle); a call sent to it straight
        (:meth:`_call`) is made the job it stands for first: at the end of its loan,
        and wherever a pool settles a lent worker's batch before that (dispatch lock held)."""
        batch: Batch | _Call | None = worker.batch
        return batch.promote() if isinstance(batch, _Call) else batch

    def _watch(self, worker: W, watched: bool) -> None:
        """Let the manager read ``worker``'s replies (``watched``), or not: it is lent
        (dispatch lock held).

        The pool decides what the manager waits on. A worker with a death signal of
        its own (``ProcessPool``) needs its reply channel watched only while the
        manager is owed a reply there: from the start until the worker says it is
        ready, and while it runs a batch that no caller waits on itself; so that a
        batch sent to an idle worker for a blocked caller changes nothing in the
        manager's selector. A worker whose channel's end is its death would be
        watched whenever it is not lent (``ParallelPool``'s connections). The
        default, for a pool that does not lend: nothing.
        """

    def _take_reply(self, worker: W) -> None:
        """Handle the reply waiting on the lent ``worker``'s first channel as the
        manager would, but leave a closed channel (a death) to the manager
        (caller's thread, dispatch lock held)."""
        raise NotImplementedError(f"{type(self).__name__} lends its workers: it implements _take_reply")

    def _await_loans(self) -> None:
        """Wait until no caller holds a lent worker (manager thread, on its way out,
        after it stopped or killed the workers: a lease is short)."""
        with self._loans_ended:
            self._loans_ended.wait_for(lambda: self._on_loan == 0)

    def _lend(self, wait: _Wait, worker: W, channels: tuple[int, ...]) -> None:
        """Lend ``worker``, just sent a batch of ``wait``'s call, to that caller (dispatch lock held).

        Its replies are the caller's alone: the manager stopped watching them before
        the batch went (:meth:`_send`)."""
        self._loan(worker, channels)
        wait.worker = worker
        wait.job = worker.batch.job if worker.batch is not None else None

    def _loan(self, worker: W, channels: tuple[int, ...]) -> None:
        """Lend ``worker`` to the calling thread, which waits on ``channels`` (dispatch lock held)."""
        worker.loan = channels
        self._lent.update(channels[1:])
        self._on_loan += 1

    def _end_loan(self, worker: W, *, replied: bool = False) -> None:
        """Give the lent ``worker`` back to the manager, first handling its reply if
        it ``replied`` (read whole or not at all: Ctrl-C waits); the pool then
        watches it as it needs to (:meth:`_watch`)."""
        with interrupts_deferred(), self._dispatch_lock:
            try:
                if replied:
                    self._take_reply(worker)
            finally:
                self._give_back(worker)

    def _give_back(self, worker: W) -> None:
        """The end of ``worker``'s loan: the manager watches it again, and a call sent to
        it straight that no reply settled (no reply within the lease, a death, a Ctrl-C)
        is the manager's as the job it stands for (dispatch lock held)."""
        channels, worker.loan = worker.loan or (), None
        try:
            self._running(worker)
            selector = self._selector
            for fd in channels[1:]:
                self._lent.discard(fd)
                key = self._muted.pop(fd, None)
                if key is not None and selector is not None:  # a death the manager saw: its turn
                    selector.register(key.fileobj, key.events, key.data)
            if selector is not None:
                self._watch(worker, True)
        finally:  # counted back whatever happens: the pool's end waits for it
            self._on_loan -= 1
            self._loans_ended.notify_all()
            if self._closing:  # the last loan may be what the manager waits for (_draining)
                self._wake_manager()

    @property
    def _draining(self) -> bool:
        # A call sent straight to a worker is no job (:meth:`_call`), but its worker is on loan.
        return self._on_loan == 0 and super()._draining

    # --------------------------------------------- the launcher's hooks

    def _call(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> T:
        # A blocked call of one task that a ready worker can take now is sent to it
        # from this thread, and is no job unless it must be (see _Call).
        options = self._defaults
        if (
            overrides
            or not self._calls_direct
            or _poll is None
            or options.timeout is not None
            or options.progress
            or self._closing
            or self._manager is None
            or self._dispatch_lock.locked()
            or next(iter(self._ready_workers()), None) is None
        ):
            return super()._call(method, function, args, kwds, overrides)
        check_callable(method, function)
        self._check_open(method)
        codec = self._codec
        assert codec is not None, f"{type(self).__name__} takes direct calls: it ships batches"
        payload = codec.function(function)
        data = codec.items(kwds, [args], 0, True)
        call = _Call(self, function, args, kwds, payload)
        lent = False  # while the worker is lent to this thread (a Ctrl-C then makes the call a job)
        try:
            with interrupts_deferred():  # sent and lent, or neither
                sent = self._send_call(method, call, data)
                lent = sent and call.handle is None  # (else a job already: not lendable now)
            if not sent:  # taken meanwhile: queued as any other call
                return super()._call(method, function, args, kwds, overrides)
            worker = call.worker
            if lent:
                replied = _reply_ready(worker, _LEASE)
                with interrupts_deferred(), self._dispatch_lock:  # (_end_loan, lent cleared within)
                    lent = False
                    try:
                        if replied:
                            self._take_reply(worker)
                    finally:
                        self._give_back(worker)
        except BaseException as error:
            if lent:  # a Ctrl-C (or a bug) while the worker was lent: the call becomes a job
                with interrupts_deferred(), self._dispatch_lock:
                    self._give_back(call.worker)
            if isinstance(error, KeyboardInterrupt) and call.job is not None:
                call.job.interrupt()
            raise
        value: T = call.value if call.handle is None else wait_for(call.handle)
        return value

    def _send_call(self, method: str, call: _Call, data: Any) -> bool:
        """Send ``call`` (its arguments encoded: ``data``) to a ready worker and lend
        that worker to this thread, or make it a job at once if the worker cannot be
        lent now; False, doing nothing, if the manager is busy, no worker is ready or
        a batch waits (it goes first). Ctrl-C held by the caller."""
        if not self._dispatch_lock.acquire(blocking=False):
            return False
        try:
            worker = self._worker_now(method)
            if worker is None:
                return False
            call.worker = worker
            worker.batch = call  # type: ignore[assignment]  # stands for one: len, finish, lose, job
            self._watch(worker, False)  # (not owed to the manager: before it is sent)
            try:
                self._write(worker, call.payload, True, data)
            except BaseException:  # nothing went out (a worker gone is the pool's to see)
                worker.batch = None
                self._watch(worker, True)
                raise
            channels = self._channels(worker)
            if channels:
                self._loan(worker, channels)
            else:  # not lendable now (part of it waits to go out): the manager's, as a job
                call.promote()
                self._watch(worker, True)
        finally:
            self._dispatch_lock.release()
        return True

    def _wait(self, start: Callable[[Any], AsyncResult[T] | CallResult[T]]) -> T:
        wait = _Wait()
        worker = None
        try:
            handle = start(wait)  # the first batch of the call sent from now lends its worker to wait
            worker = self._disarm(wait)
            replied = worker is not None and _reply_ready(worker, _LEASE)
        except BaseException as error:  # the manager must get the worker back, whatever happens
            worker = self._disarm(wait)
            if worker is not None:
                self._end_loan(worker)
                if isinstance(error, KeyboardInterrupt) and wait.job is not None:
                    wait.job.interrupt()
            raise
        finally:
            # The job refers to its wait: no cycle is left for the garbage collector,
            # which a pipe in a loop would otherwise set off every few dozen calls.
            wait.job = None
        if worker is not None:
            self._end_loan(worker, replied=replied)
        return wait_for(handle)

    def _launch(self, method: str, job: EagerJob, batches: list[Batch], count: int) -> None:
        wait = job.wait
        if (
            isinstance(wait, _Wait)
            and len(batches) == 1
            and not job.listened
            and self._send_now(method, job, batches[0], wait)
        ):
            return
        super()._launch(method, job, batches, count)

    def _send_now(self, method: str, job: EagerJob, batch: Batch, wait: _Wait) -> bool:
        """Send ``batch``, a blocked caller's whole call, straight to a ready worker, which
        is lent to it (:meth:`_send`): no queue, no wake-up. False, doing nothing, if
        the manager is busy, another batch waits (it goes first), or no worker is
        ready; the call is then queued as any other."""
        if self._codec is None or self._closing or self._manager is None:
            return False  # (a pool that does not ship batches sends them its own way)
        with interrupts_deferred():  # the batch is loaded and sent, or neither
            if not self._dispatch_lock.acquire(blocking=False):
                return False
            try:
                worker = self._worker_now(method, lambda: self._load_running(job, batch))
                if worker is None:
                    return False
                self._send(worker, batch)
                wait.armed = False  # its one batch is out: _disarm needs no lock
            finally:
                self._dispatch_lock.release()
        return True

    def _worker_now(self, method: str, load: Callable[[], None] | None = None) -> W | None:
        """A ready worker that a blocked caller's call of one task may go to straight
        (dispatch lock held), after ``load`` (under the pool's lock, once the pool is
        found open); ``None``, doing nothing, if no worker is ready, the pool is
        stopping, or a batch waits (it goes first)."""
        worker = next(iter(self._ready_workers()), None)
        if worker is None or self._killing or self._closing:
            return None
        with self._lock:
            if self._batches_waiting():
                return None
            self._check_open(method)
            if load is not None:
                load()
        return worker

    def _load_running(self, job: EagerJob, batch: Batch) -> None:
        """Make ``job``, whose one ``batch`` goes to a worker at once, the scheduler's (pool's lock held)."""
        self._scheduler.add(job)
        job.load_running(batch)

    def _disarm(self, wait: _Wait) -> W | None:
        """The worker lent to ``wait`` while it started its call, if any; none is lent
        to it from now on (under the dispatch lock: the manager may be sending its batch)."""
        if wait.armed:  # (it is disarmed under the lock, and its worker set before)
            with self._dispatch_lock:
                wait.armed = False
        worker: W | None = wait.worker
        return worker

    def _encode(self, job: Job, batches: list[Batch]) -> None:
        codec = self._codec
        if codec is None:
            return
        if job.payload is None:
            job.payload = codec.function(job.function)
        for batch in batches:
            batch.payload = codec.items(job.kwargs, batch.items, batch.indices[0], job.star)

    def _stop_workers(self, *, kill: bool) -> None:
        if kill:
            self._killing = True
        self._closing = True
        self._wake_manager()

    def _join_workers(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.join()
        if self._doorbell is not None:
            self._doorbell.close()
            self._doorbell = None

    def _resize(self, nodes: int) -> None:
        self._wake_manager()  # the manager starts or retires workers to match

    def _wake(self) -> None:
        # Work was queued: send it to an idle worker from this thread if the
        # manager is not busy, else let the manager know.
        if self._closing or self._manager is None or not self._dispatch_now():
            self._wake_manager()

    def _interrupted(self, job: Job) -> None:
        # The manager stops the tasks, in its own thread: a batch it is about to
        # send cannot slip past a stop that looked before the batch was assigned.
        self._doomed.add(job)
        self._wake_manager()

    def __del__(self) -> None:
        # Nobody refers to the pool any more, but its manager thread still runs:
        # hand the pool to it (which keeps the object alive) to stop its
        # workers; nobody can wait for the work left, so it is terminated.
        try:
            manager = self._manager
            if manager is None or not manager.is_alive() or self._last_rites:
                return
            self._last_rites.append(self)
            if self._accepting():
                self.terminate()
            self._wake_manager()
        except Exception:  # an interpreter shutting down: nothing to save
            pass

    # -------------------------------------------------------- the manager

    def _dispatch_now(self) -> bool:
        """Dispatch in this thread if the manager is not busy; False if it is."""
        if not self._dispatch_lock.acquire(blocking=False):
            return False
        try:
            with interrupts_deferred():  # a batch is taken and sent, or neither
                self._dispatch()
        finally:
            self._dispatch_lock.release()
        return True

    def _manage_failed(self, error: BaseException) -> None:
        """A bug in the manager: it must fail the work, never hang it."""
        add_note(error, f"manymap: the {type(self).__name__} manager thread failed")
        self._killing = True
        self._break(error)

    def _manage_end(self) -> None:
        """The manager's last act: stop every worker, close the selector."""
        try:
            self._stop_all()
        finally:
            selector, self._selector = self._selector, None
            if selector is not None:
                selector.close()

    def _manage_once(self) -> bool:
        """One round: staff, dispatch, wait, handle. Returns True when done."""
        if self._manage_start():
            return True
        assert self._selector is not None
        self._manage_handle(self._selector.select(_TICK))
        return False

    def _manage_start(self) -> bool:
        """Staff and dispatch; True when the manager is done."""
        with self._dispatch_lock:
            if self._killing or (self._closing and self._draining):
                return True
            self._staff()
            self._dispatch()
        return False

    def _manage_handle(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Handle what the selector found ready, but not the death of a worker lent
        to a caller: the caller sees it too and gives the worker back; until then
        its death signal is muted (unwatched), and then watched again."""
        with self._dispatch_lock:
            found = []
            selector = self._selector
            for key, _ in ready:
                if key.data is None:
                    assert self._doorbell is not None
                    self._doorbell.drain()
                elif key.fd in self._lent:
                    if selector is not None and key.fd not in self._muted:
                        selector.unregister(key.fd)
                        self._muted[key.fd] = key
                else:
                    found.append(key.data)
            self._handle(found)
        if not ready:  # a whole tick with nothing to do
            self._idle()

    def _idle(self) -> None:
        """The manager waited a whole tick for nothing (manager thread, no lock held):
        the place for a pool's chores that must not delay work, such as a clean-up."""


class _Wait:
    """A caller blocked on its own call (:meth:`ManagedWorkerPool._wait`): until it
    has started the call (``armed``), the first batch of the call sent, by its
    thread or the manager's, lends it that batch's ``worker``."""

    __slots__ = ("armed", "job", "worker")

    def __init__(self) -> None:
        self.armed = True
        self.worker: Any = None
        self.job: Job | None = None


class _Call:
    """A blocked caller's call of one task that :meth:`ManagedWorkerPool._call` sent
    straight to a ready worker, lent to that caller: the worker's record holds it
    where it would hold the batch of a job.

    The task's value in the worker's reply settles it as a batch would: the stats
    recorded, the value kept for the caller. Anything else makes it the job it
    stands for (:meth:`promote`), whose batch then takes what came (a failure, a
    loss) or waits for it (no reply within the lease, a death, a Ctrl-C): from
    there on the call is a job like any other.
    """

    __slots__ = ("args", "batch", "function", "handle", "job", "kwds", "payload", "pool", "value", "worker")

    def __init__(
        self,
        pool: ManagedWorkerPool[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        payload: bytes,
    ) -> None:
        self.pool = pool
        self.function = function
        self.args = args
        self.kwds = kwds
        self.payload = payload
        self.worker: Any = None  # the worker it was sent to
        self.value: Any = None
        # Once promoted: its job (None: none, which is what the doomed workers' look reads), batch and handle.
        self.job: EagerJob | None = None
        self.batch: Batch | None = None
        self.handle: CallResult[Any] | None = None

    def __len__(self) -> int:
        return 1

    def finish(
        self,
        values: Sequence[Any],
        failures: Mapping[int, TaskFailure] | None = None,
        *,
        duration: float | None = None,
    ) -> None:
        """As :meth:`Batch.finish` (the caller's thread, dispatch lock held)."""
        if failures or duration is None or len(values) != 1:
            self.promote().finish(values, failures, duration=duration)  # the job names the failure
            return
        pool, worker = self.pool, self.worker
        with pool._lock:
            pool._scheduler.record(self.function, worker.name, worker.host, 1, 0, duration)
        self.value = values[0]

    def lose(self, reason: str, *, exitcode: int | None = None, culprit: int | None = None) -> None:
        """As :meth:`Batch.lose`."""
        self.promote().lose(reason, exitcode=exitcode, culprit=culprit)

    def promote(self) -> Batch:
        """Make the call the job it stands for, its one batch running on the call's
        worker, and return that batch (dispatch lock held; once)."""
        if self.batch is not None:
            return self.batch
        pool = self.pool
        handle: CallResult[Any] = CallResult()
        job = EagerJob(
            pool._scheduler,
            self.function,
            star=True,
            kwargs=self.kwds,
            options=pool._defaults,
            chunksize=1,
            taper=0,
            listener=None,
            handle=handle,
            single=True,
        )
        handle._job = job
        job.payload = self.payload
        batch = Batch(job, range(1), [self.args])
        with pool._lock:
            pool._load_running(job, batch)
        worker = self.worker
        if worker.batch is self:
            worker.batch = batch
        batch.start(worker.name, worker.host)
        self.job, self.batch, self.handle = job, batch, handle
        return batch


def _reply_ready(worker: ManagedWorker, timeout: float) -> bool:
    """Whether the lent ``worker``'s reply came within ``timeout`` seconds (False
    as soon as another of its channels, its death, is ready); the first ``SPIN``
    of them without sleeping (:func:`spin`)."""
    channels = worker.loan
    assert channels is not None
    waiter = worker.waiter
    if waiter is None:  # once per worker: it lives as long as the worker's channels
        assert _poll is not None
        waiter = worker.waiter = _poll()
        for fd in channels:
            waiter.register(fd, select.POLLIN)
    ready = spin(lambda: waiter.poll(0))  # without sleeping for SPIN, then asleep for the rest
    if not ready:
        ready = waiter.poll(max(0.0, timeout - SPIN) * 1000)  # milliseconds
    return any(fd == channels[0] for fd, _ in ready)


def _manage(
    reference: weakref.ref[ManagedWorkerPool[Any]], rites: list[ManagedWorkerPool[Any]], doorbell: Doorbell
) -> None:
    """The manager thread: rounds of :meth:`ManagedWorkerPool._manage_once`,
    holding the pool only weakly while it waits on the selector."""
    pool = reference()
    try:
        try:
            while pool is not None and not pool._manage_start():
                selector = pool._selector
                assert selector is not None
                pool = None  # the wait must not keep the pool alive
                ready = selector.select(_TICK)
                pool = rites[0] if rites else reference()
                if pool is not None:
                    pool._manage_handle(ready)
        except BaseException as error:
            pool = rites[0] if rites else reference()
            if pool is None:
                raise
            pool._manage_failed(error)
        finally:
            if pool is not None:
                pool._manage_end()
    finally:
        if rites:  # collected: nobody will join this thread and close the doorbell
            doorbell.close()
            rites.clear()


class interrupts_deferred:
    """Hold a Ctrl-C that arrives in the block until the block has run.

    Python raises ``KeyboardInterrupt`` between any two bytecodes of the main
    thread; in the middle of taking and sending a batch that would lose it.
    (A class, not a generator: it runs twice per ``pipe``.)
    """

    __slots__ = ("_handler", "_held")

    def __enter__(self) -> None:
        handler = _raw_signal.getsignal(signal.SIGINT)
        if not callable(handler) or threading.current_thread() is not threading.main_thread():
            self._handler = None
            return
        held: list[FrameType | None] = []
        self._handler, self._held = handler, held
        _raw_signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))

    def __exit__(self, *exc_info: object) -> None:
        handler = self._handler
        if handler is None:
            return
        _raw_signal.signal(signal.SIGINT, handler)
        if self._held:
            handler(signal.SIGINT, self._held[0])
