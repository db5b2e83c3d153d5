"""The installed manymap-pools-rpc distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-rpc)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance
from manymap.launcher.testing._imports import fresh_run_loads


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-rpc"
    module = "manymap.pools.rpc"
    public_modules = ("manymap.pools.rpc", "manymap.pools.rpc.bootstrap")
    scripts = ("manymap-server",)
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED


SCRIPT_RUN = """
from manymap.pools.rpc import ParallelPool
with ParallelPool(2) as pool:
    assert pool.map(abs, [-1, -2]) == [1, 2] and pool.pipe(abs, -3) == 3
"""


def test_a_script_run_loads_no_typing() -> None:
    """A script's whole run (import, start-up, map, pipe, close) never loads typing (5 to 10 ms)."""
    assert not fresh_run_loads(SCRIPT_RUN, ["typing"], what="the script")


def test_the_local_workers_hold_no_typing_logging_or_importlib_util() -> None:
    """Nor do its local server, template and workers: what a worker holds, they
    loaded on the way to the first task (typing and logging cost 5 ms each,
    importlib.util 1.3 ms; ppft's transport imports logging for a check this
    worker never makes)."""
    assert not _loaded_by_script_or_worker(["typing", "logging", "importlib.util"])


def test_a_script_run_loads_no_openssl() -> None:
    """Nor OpenSSL (``hashlib``'s first import, 5 to 8 ms): the handshake and the frames'
    tags are BLAKE2b, CPython's own, and a local pool's workers load ppft's transport
    without it."""
    assert not _loaded_by_script_or_worker(["_hashlib", "hmac", "_ssl"])


def _loaded_by_script_or_worker(names: list[str]) -> set[str]:
    """Which of ``names`` (modules) a run of ``SCRIPT_RUN`` loads; the script fails if a
    task in one of its local workers finds any of them loaded. The workers are forks
    of the server's template, itself a fork of the script's process: a task looks in one."""
    code = SCRIPT_RUN.replace(
        "== 3\n",
        "== 3\n    import sys\n"
        f"    held = pool.pipe(lambda: [m for m in {names!r} if m in sys.modules])\n"
        "    assert not held, held\n",
    )
    return fresh_run_loads(code, names, what="the script")
