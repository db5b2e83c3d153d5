"""CPython's own executor tests, run on a manymap pool's executor view.

CPython tests its executors with generic mixins in ``test_concurrent_futures``
(one module up to Python 3.11, a package from 3.12): ``ExecutorTest``,
``WaitTests``, ``AsCompletedTests`` and ``ExecutorShutdownTest``, each
combined with an ``ExecutorMixin`` that builds ``self.executor`` from an
``executor_type``. :func:`cpython_executor_tests` combines the same mixins
with an ``executor_type`` that builds ``make_pool(max_workers).executor``, so
the interpreter's own tests, not a copy of them, prove that
:class:`~manymap.launcher.PoolExecutor` keeps the stdlib's semantics.

The tests come from the running interpreter's ``test`` package. Some Python
builds leave it out (Debian's, and this project's pyenv 3.11 build):
then a directory holding CPython's ``Lib/test`` of the same version is used,
named by ``MANYMAP_CPYTHON_TESTS`` or found where Debian's
``libpython3.X-testsuite`` puts it. If neither is there, building the tests
raises: the run fails, it never skips them.

Only what tests the stdlib's own classes is left out, each with its reason
(see :data:`NOT_GENERIC`).
"""

from __future__ import annotations

import importlib
import os
import sys
import unittest
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool, PoolExecutor

__all__ = ["NOT_GENERIC", "cpython_executor_tests", "load_cpython_futures_tests"]

#: The generic mixins, by name.
MIXINS = ("ExecutorTest", "WaitTests", "AsCompletedTests", "ExecutorShutdownTest")

# Where each name lives: the 3.10/3.11 module, then the 3.12+ package's submodules.
_MODULES = (
    "test.test_concurrent_futures",
    "test.test_concurrent_futures.util",
    "test.test_concurrent_futures.executor",
    "test.test_concurrent_futures.test_wait",
    "test.test_concurrent_futures.test_as_completed",
    "test.test_concurrent_futures.test_shutdown",
)

_SCRIPT = (
    "runs a child interpreter on a script that imports the executor class by name from "
    "concurrent.futures (`from concurrent.futures import {executor_type.__name__}`), "
    "so it can only test the stdlib's own classes; manymap-pools-local's tests/test_executor_exit.py "
    "runs the same scripts on manymap's executors"
)

#: Tests of the generic mixins that test the stdlib's classes rather than the
#: Executor contract, with the reason each is left out.
NOT_GENERIC: Mapping[str, str] = {
    "test_interpreter_shutdown": _SCRIPT,
    "test_submit_after_interpreter_shutdown": _SCRIPT,
    "test_hang_gh83386": _SCRIPT,
    "test_cancel_futures": (
        "asserts that at least one of 50 futures submitted just before shutdown(cancel_futures=True) "
        "had started: the stdlib executors start work inside submit() (a thread started per submit, "
        "a call queue filled ahead of the workers), a manymap pool hands work out when a worker asks, "
        "so all 50 may still be pending and are then rightly cancelled; the rest of the test (pending "
        "futures cancelled, the others finished without error) is "
        "PoolConformance.test_executor_shutdown_cancels_futures"
    ),
}

ENVIRONMENT = "MANYMAP_CPYTHON_TESTS"


def load_cpython_futures_tests() -> ModuleType:
    """Import CPython's ``test.test_concurrent_futures`` for the running Python.

    From the interpreter's own ``test`` package if it has it, else from the
    directory in ``$MANYMAP_CPYTHON_TESTS`` or Debian's
    ``/usr/lib/python3.X/test`` (package ``libpython3.X-testsuite``), which is
    added to the ``test`` package's search path.

    Raises:
        RuntimeError: no copy of the tests for this Python version is found.
    """
    try:
        return importlib.import_module("test.test_concurrent_futures")
    except ModuleNotFoundError as error:
        if error.name not in ("test", "test.test_concurrent_futures"):
            raise
    version = _version()
    for path in _candidate_dirs():
        if (path / "test_concurrent_futures.py").is_file() or (path / "test_concurrent_futures").is_dir():
            package = importlib.import_module("test")  # the interpreter's own: so is test.support
            if str(path) not in package.__path__:
                package.__path__.append(str(path))
            return importlib.import_module("test.test_concurrent_futures")
    raise RuntimeError(
        f"CPython's executor tests for Python {version} (test.test_concurrent_futures) are not "
        f"installed: this interpreter ({sys.executable}) has no test.test_concurrent_futures, "
        f"${ENVIRONMENT} names no directory holding it, and Debian's libpython{version}-testsuite "
        f"is not installed (apt-get install libpython{version}-testsuite)"
    )


def _version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _candidate_dirs() -> list[Path]:
    """Where CPython's ``Lib/test`` of this version may be, when the interpreter has none."""
    named = os.environ.get(ENVIRONMENT, "")
    return [Path(directory) for directory in (named, f"/usr/lib/python{_version()}/test") if directory]


def _find(name: str) -> Any:
    load_cpython_futures_tests()
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise RuntimeError(f"CPython's test_concurrent_futures for this Python has no {name}")


def cpython_executor_tests(
    name: str,
    make_pool: Callable[[int], AbstractWorkerPool],
    *,
    skip: Mapping[str, str] | None = None,
) -> dict[str, type[unittest.TestCase]]:
    """CPython's generic executor test cases, on ``make_pool(max_workers).executor``.

    Put them in a test module's namespace and pytest (or unittest) runs them::

        globals().update(cpython_executor_tests("ThreadPool", ThreadPool))

    Args:
        name: names the classes (``Test{name}ExecutorTest``, ...).
        make_pool: a new pool of that many workers.
        skip: more tests to leave out, by method name, each with its reason
            (:data:`NOT_GENERIC` is always left out).

    Returns:
        The test case classes by name, one per generic mixin.

    Raises:
        RuntimeError: CPython's tests for this Python are not found (see
            :func:`load_cpython_futures_tests`).
    """
    base = _find("BaseTestCase")
    executor_mixin = _find("ExecutorMixin")

    def executor_type(max_workers: int | None = None, **kwargs: Any) -> PoolExecutor:
        if kwargs:
            raise TypeError(f"the {name} executor of the CPython tests takes no {sorted(kwargs)}")
        return make_pool(max_workers if max_workers is not None else 5).executor

    def max_workers_negative(self: Any) -> None:
        # The stdlib's test checks ThreadPoolExecutor's own message; a pool says it in its words.
        for number in (0, -1):
            with pytest.raises(ValueError, match="nodes must be a positive integer"):
                self.executor_type(max_workers=number)

    skipped = {**NOT_GENERIC, **(skip or {})}
    classes: dict[str, type[unittest.TestCase]] = {}
    for mixin_name in MIXINS:
        mixin = _find(mixin_name)
        namespace: dict[str, Any] = {
            "executor_type": staticmethod(executor_type),
            "__module__": __name__,
            "__doc__": f"CPython's {mixin_name}, on {name}(max_workers).executor.",
        }
        if hasattr(mixin, "test_max_workers_negative"):
            namespace["test_max_workers_negative"] = max_workers_negative
        for test_name, reason in skipped.items():
            if hasattr(mixin, test_name):
                namespace[test_name] = unittest.skip(reason)(getattr(mixin, test_name))
        class_name = f"Test{name}{mixin_name}"
        classes[class_name] = type(class_name, (mixin, executor_mixin, base), namespace)  # CPython's order
    return classes
