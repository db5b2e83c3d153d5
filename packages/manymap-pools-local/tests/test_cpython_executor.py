"""CPython's own executor tests on ThreadPool's and ProcessPool's ``executor`` view.

The generic parts of the running interpreter's ``test_concurrent_futures``
(``ExecutorTest``, ``WaitTests``, ``AsCompletedTests``,
``ExecutorShutdownTest``), unchanged, with an executor built as
``ThreadPool(max_workers).executor`` / ``ProcessPool(max_workers).executor``
(see :func:`manymap.launcher.testing.cpython_executor_tests`). If the tests
are not installed for this Python, collecting this module fails.
"""

from __future__ import annotations

from manymap.launcher.testing import cpython_executor_tests
from manymap.pools.local import ProcessPool, ThreadPool

globals().update(cpython_executor_tests("ThreadPool", ThreadPool))
# The default start method (fork on Linux): the tests' functions live in a module
# that may have been found outside the interpreter's own test package.
globals().update(cpython_executor_tests("ProcessPool", ProcessPool))
