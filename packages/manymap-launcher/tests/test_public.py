"""``collector_paused``: the garbage collector off for a block, as it was after it (every
package's conformance suite checks that importing it leaves the collector on)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from manymap.launcher.lowlevel import collector_paused


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was_on = gc.isenabled()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("on", [True, False])
def test_the_collector_is_off_in_the_block_and_as_it_was_after(on: bool) -> None:
    if on:
        gc.enable()
    else:
        gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is on
    with pytest.raises(ImportError), collector_paused():
        raise ImportError("a module that fails to load")
    assert gc.isenabled() is on
