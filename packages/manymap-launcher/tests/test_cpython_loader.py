"""CPython's executor tests are never silently missing: without them, building the tests fails."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher.testing import ReferencePool, _cpython, cpython_executor_tests


@pytest.fixture
def no_cpython_tests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.import_module

    def without_them(name: str, package: str | None = None) -> Any:
        if name.startswith("test.test_concurrent_futures"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_them)
    monkeypatch.setattr(_cpython, "_candidate_dirs", lambda: [tmp_path])  # holds no tests


def test_missing_tests_fail_loudly(no_cpython_tests: None) -> None:
    with pytest.raises(RuntimeError, match=r"apt-get install libpython3\.\d+-testsuite"):
        _cpython.load_cpython_futures_tests()
    with pytest.raises(RuntimeError, match="are not installed"):
        cpython_executor_tests("ReferencePool", ReferencePool)
