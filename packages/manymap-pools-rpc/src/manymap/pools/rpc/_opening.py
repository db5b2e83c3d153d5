"""Starting a ParallelPool's nodes and opening their first connections, all nodes at once.

Used when the pool starts and when its ``servers`` are reassigned, in the
caller's thread (which waits, as it waits for any pool to start); later
connections come from the manager's connector (``_connector.py``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable

from manymap.launcher.lowlevel import Batch, warn_user
from manymap.pools.rpc._connector import connect_patiently
from manymap.pools.rpc._nodes import LocalNode, Node, ServerBusy
from manymap.pools.rpc._slot import Slot

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.pools.rpc._remote_host import RemoteHost

__all__ = ["check_specs", "check_tasks", "open_nodes", "rerun", "stop_nodes", "warn_down", "why"]


def why(error: BaseException) -> str:
    """An error in a few words, for messages."""
    return f"{type(error).__name__}: {error}"


def check_specs(servers: Iterable[str | RemoteHost]) -> tuple[str | RemoteHost, ...]:
    """``servers`` as a tuple, each entry checked."""
    if isinstance(servers, str):
        raise TypeError("servers must be a sequence of server specs, not one string")
    specs = tuple(servers)
    for spec in specs:
        if isinstance(spec, str):
            continue
        from manymap.pools.rpc._remote_host import RemoteHost  # (see its docstring)

        if not isinstance(spec, RemoteHost):
            raise TypeError(f"servers: {spec!r} is neither a server spec (str) nor a host profile")
    return specs


def check_tasks(value: int | None) -> int | None:
    """``ParallelPool``'s ``maxtasksperchild``, checked: a positive integer or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"ParallelPool(): maxtasksperchild must be a positive integer or None, got {value!r}"
        )
    return value


def open_nodes(
    nodes: list[Node], local_workers: int
) -> tuple[list[Slot], dict[str, str], list[BaseException]]:
    """Start ``nodes`` and open one connection per worker each announces (the local
    node: ``local_workers``), all nodes at once (a single one on this thread).

    Returns:
        The connections, why each node that failed did (by label), and the errors.
    """
    opened: list[list[Slot]] = [[] for _ in nodes]
    down: dict[str, str] = {}
    errors: list[BaseException] = []

    def open_node(node: Node, slots: list[Slot]) -> None:
        try:
            node.ensure_started()
            # The local server has a place for each of its workers: all connections at once,
            # the first with the others (each waits for its worker as its server starts).
            others = _connecting(node, local_workers - 1) if isinstance(node, LocalNode) else None
            try:
                slots.append(Slot(node, connect_patiently(node)))
            finally:
                if others is not None:
                    slots.extend(others())
            node.workers = int(slots[0].info.get("workers", 1))
            want = local_workers if isinstance(node, LocalNode) else node.workers
            for _ in range(want - len(slots)):
                try:
                    slots.append(Slot(node, node.connect()))
                except ServerBusy:  # other clients hold the rest of its workers
                    break
        except BaseException as error:  # a Ctrl-C too: a single node opens on the caller's thread
            for slot in slots:
                slot.close()
            slots.clear()
            with contextlib.suppress(Exception):
                node.shutdown()
            if not isinstance(error, Exception):
                raise
            down[node.label] = why(error)
            errors.append(error)

    # (each step of a start or connect has its own timeout)
    _at_once([functools.partial(open_node, node, out) for node, out in zip(nodes, opened, strict=True)])
    return [slot for slots in opened for slot in slots], down, errors


def _connecting(node: Node, count: int) -> Callable[[], list[Slot]]:
    """Start opening ``count`` connections to ``node`` side by side; the function
    returned waits for them and gives those that opened (the caller opens the
    rest one by one)."""
    opened: list[Slot] = []

    def connect() -> None:
        with contextlib.suppress(Exception):
            opened.append(Slot(node, node.connect()))

    threads = [threading.Thread(target=connect, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()

    def wait() -> list[Slot]:
        for thread in threads:
            thread.join()  # each connect has its own timeout
        return opened

    return wait


def warn_down(nodes: list[Node], down: dict[str, str]) -> None:
    """A warning (at the user's line) for each of ``nodes`` that is ``down``."""
    for node in nodes:
        if node.label in down:
            warn_user(
                f"ParallelPool: server {node.label} is not used: {down[node.label]}; "
                "its share of the work goes to the other nodes"
            )


def stop_nodes(nodes: list[Node]) -> None:
    """Stop ``nodes`` at once (stopping one over ssh takes a while)."""
    _at_once([node.shutdown for node in nodes], timeout=60.0)


def _at_once(calls: list[Callable[[], None]], timeout: float | None = None) -> None:
    """Run ``calls`` side by side, each on a thread of its own, and wait for them (at
    most ``timeout`` seconds each); a single one on this thread: starting a thread
    waits until it runs, a busy machine's share of a pool's start or close (1 to
    1.5 ms of a local ParallelPool's start here)."""
    if len(calls) == 1:
        calls[0]()
        return
    threads = [threading.Thread(target=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def rerun(lock: Any, batch: Batch) -> Batch | None:
    """A fresh copy of an unsettled ``batch`` to run again, the old one retired.

    The copy stands for the same tasks (the job counts tasks in flight, not
    batch objects); the old one is marked settled (under the pool's ``lock``)
    so that its timeout, which ran from its first start, no longer applies.
    ``None`` if it was settled.
    """
    with lock:
        if batch.settled:
            return None
        batch.settled = True
        return Batch(batch.job, batch.indices, batch.items, batch.attempt)
