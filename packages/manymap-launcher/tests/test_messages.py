"""What a user reads: public paths in tracebacks, the method called in errors, warnings at the user's line."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import traceback
import warnings
from pathlib import Path

import pytest

import manymap.launcher
from manymap.launcher import PoolClosedError, TaskEvent, WorkerLostError
from manymap.launcher.lowlevel import warn_user
from manymap.launcher.testing import ReferencePool


def test_a_traceback_names_the_public_path() -> None:
    pool = ReferencePool(1)
    pool.close()
    with pytest.raises(PoolClosedError) as caught:
        pool.map(abs, [1])
    pool.join()
    text = "".join(traceback.format_exception_only(caught.type, caught.value))
    assert text.startswith("manymap.launcher.PoolClosedError: ReferencePool.map() on <ReferencePool")
    assert "_errors" not in text


def test_public_classes_pickle_by_their_public_path() -> None:
    data = pickle.dumps(PoolClosedError("closed"), protocol=0)
    assert b"manymap.launcher\nPoolClosedError" in data
    assert b"_errors" not in data
    assert type(pickle.loads(data)) is PoolClosedError
    lost = pickle.loads(pickle.dumps(WorkerLostError("lost", index=3, worker="w1", exitcode=-9)))
    assert (type(lost), lost.index, lost.worker, lost.exitcode) == (WorkerLostError, 3, "w1", -9)


def test_every_public_name_reads_as_manymap_launcher() -> None:
    for name in manymap.launcher.__all__:
        obj = getattr(manymap.launcher, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "manymap.launcher", name


def test_implementer_names_read_as_manymap_launcher_lowlevel() -> None:
    import manymap.launcher.lowlevel

    for name in manymap.launcher.lowlevel.__all__:
        obj = getattr(manymap.launcher.lowlevel, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "manymap.launcher.lowlevel", name
        assert not hasattr(manymap.launcher, name), f"{name} is an implementer name, not a user one"


@pytest.mark.parametrize(
    "method", ["map", "amap", "smap", "asmap", "imap", "uimap", "ismap", "pipe", "apipe"]
)
def test_a_bad_call_names_the_method_called(method: str) -> None:
    args = (1,) if method in ("pipe", "apipe") else ([1],)
    with ReferencePool(1) as pool, pytest.raises(TypeError, match=rf"^{method}\(\) needs a callable"):
        getattr(pool, method)(42, *args)


def test_a_broken_progress_consumer_warns_at_the_callers_line() -> None:
    def broken(event: TaskEvent) -> None:
        raise RuntimeError("consumer broke")

    with ReferencePool(2) as pool, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        assert pool.map(abs, [-1, -2, -3], progress=broken) == [1, 2, 3]
    assert [(w.category, w.filename, w.lineno) for w in caught] == [(RuntimeWarning, __file__, line)]
    assert "consumer broke" in str(caught[0].message)


def test_warn_user_skips_every_manymap_frame() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        warn_user("from here", UserWarning)
    assert [(w.category, w.filename, w.lineno) for w in caught] == [(UserWarning, __file__, line)]


def test_warn_user_from_a_script_shows_the_scripts_line(tmp_path: Path) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            """\
            from manymap.launcher.testing import ReferencePool

            def broken(event):
                raise RuntimeError("consumer broke")

            with ReferencePool(1) as pool:
                pool.map(abs, [1, 2], progress=broken)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"{script}:7: RuntimeWarning: progress consumer" in done.stderr
    assert "manymap" not in done.stderr.split("RuntimeWarning")[0]
