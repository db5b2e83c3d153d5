"""Option validation and merging."""

from __future__ import annotations

import pytest

from manymap.launcher.lowlevel import TaskOptions


def test_defaults() -> None:
    options = TaskOptions()
    assert (options.chunksize, options.timeout, options.retries, options.progress) == (None, None, 0, None)
    assert TaskOptions.names() == ("chunksize", "timeout", "retries", "progress")


def test_merge_lays_overrides_over_defaults() -> None:
    base = TaskOptions(timeout=5, retries=1)
    merged = base.merged({"retries": 3, "chunksize": 10})
    assert (merged.chunksize, merged.timeout, merged.retries) == (10, 5, 3)
    assert base.merged({}) is base


@pytest.mark.parametrize(
    ("overrides", "error", "text"),
    [
        ({"chunksize": 0}, ValueError, "chunksize must be a positive integer or None, got 0"),
        ({"chunksize": 2.5}, ValueError, "chunksize must be a positive integer"),
        ({"chunksize": True}, ValueError, "chunksize must be a positive integer"),
        ({"timeout": 0}, ValueError, "timeout must be a positive number of seconds or None, got 0"),
        ({"timeout": float("inf")}, ValueError, "timeout must be a positive number"),
        ({"timeout": "5"}, ValueError, "timeout must be a positive number"),
        ({"retries": -1}, ValueError, "retries must be a non-negative integer, got -1"),
        ({"progress": 3}, TypeError, "progress must be True, False, None or a callable"),
        ({"chunk_size": 3}, TypeError, "unexpected option 'chunk_size'; the options are chunksize"),
        ({"a": 1, "b": 2}, TypeError, "unexpected options 'a', 'b'"),
    ],
)
def test_bad_options_say_what_is_wrong(
    overrides: dict[str, object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        TaskOptions().merged(overrides)


def test_valid_progress_values() -> None:
    for progress in (None, False, True, print):
        assert TaskOptions(progress=progress).progress is progress


def test_a_nodes_alias_reads_and_resizes_like_nodes() -> None:
    from manymap.launcher.lowlevel import NodesAlias, ThreadWorkerPool

    with ThreadWorkerPool(2) as pool:
        assert pool.nthreads == 2
        pool.nthreads = 3  # a live resize, as through ``nodes``
        assert pool.nodes == 3
        assert sorted(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]
    assert isinstance(ThreadWorkerPool.nthreads, NodesAlias)
    assert "nthreads" in (ThreadWorkerPool.nthreads.__doc__ or "")
    with pytest.raises(ValueError, match="nodes must be a positive integer"):
        ThreadWorkerPool(1).nthreads = 0


def test_an_unknown_option_names_the_call() -> None:
    with pytest.raises(
        TypeError, match=r"^ThreadPool\.map\(\) got an unexpected option 'retry'; the options"
    ):
        TaskOptions().merged({"retry": 1}, call="ThreadPool.map()")
