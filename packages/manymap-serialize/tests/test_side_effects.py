"""Importing and using manymap.serialize changes no global pickle, copyreg or dill state."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable

RunPython = Callable[..., subprocess.CompletedProcess[str]]

SNAPSHOT = textwrap.dedent(
    """
    import copyreg, pickle, sys

    def snapshot():
        state = {
            "copyreg.dispatch_table": dict(copyreg.dispatch_table),
            "copyreg._extension_registry": dict(copyreg._extension_registry),
            "copyreg._inverted_registry": dict(copyreg._inverted_registry),
            "pickle._Pickler.dispatch": dict(pickle._Pickler.dispatch),
            "pickle.Pickler.dispatch_table": getattr(pickle.Pickler, "dispatch_table", None),
            "pickle.Pickler": pickle.Pickler,
            "pickle.dumps": pickle.dumps,
            "pickle.loads": pickle.loads,
        }
        if "dill" in sys.modules:
            import dill
            state["dill.settings"] = dict(dill.settings)
            state["dill.Pickler.dispatch"] = dict(dill.Pickler.dispatch)
        return state

    def compare(before, after, when):
        for key in before:
            assert before[key] == after[key], f"{key} changed {when}"
    """
)


def test_import_has_no_side_effects_and_does_not_import_dill(run_python: RunPython) -> None:
    code = SNAPSHOT + textwrap.dedent(
        """
        before = snapshot()
        import manymap.serialize
        compare(before, snapshot(), "on import")
        assert "dill" not in sys.modules, "importing manymap.serialize imported dill"
        print("ok")
        """
    )
    assert run_python(code=code).stdout.strip() == "ok"


def test_use_changes_no_global_state(run_python: RunPython) -> None:
    code = SNAPSHOT + textwrap.dedent(
        """
        import dill  # dill's own import-time registrations happen here, before the snapshot
        before = snapshot()
        import manymap.serialize as ms
        compare(before, snapshot(), "on import")

        class Local:
            def __init__(self):
                self.f = lambda x: x + 1

        def closure_maker(k):
            return lambda x: x * k

        for value in ([1, 2.0, "x"], Local(), closure_maker(3), sys, ms.check):
            payload, buffers = ms.dumps_oob(value)
            ms.loads(payload, buffers=buffers)
            ms.copy(value)
            ms.check(value)
        ms.check([Local(), open(__import__("os").devnull)])
        compare(before, snapshot(), "by dumps/loads/copy/check")
        print("ok")
        """
    )
    assert run_python(code=code).stdout.strip() == "ok"
