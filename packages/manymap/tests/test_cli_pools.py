"""``manymap map --pool dask`` and the pools found through the ``manymap.pools`` entry points.

manymap-pools-dask is an optional extra: where it is installed the command
runs the map on an embedded Dask cluster; where it is not, the command says
what to install. Both are real runs of the installed ``manymap`` script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from manymap._pools import announced_pools

MANYMAP = str(Path(sys.executable).with_name("manymap"))
DASK = "dask" in announced_pools()


def run(*args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MANYMAP, *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_map_on_the_dask_pool_or_what_to_install() -> None:
    result = run("map", "math:factorial", "--json", "--pool", "dask", "-n", "2", input="3\n4\n")
    if DASK:
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["6", "24"]
    else:
        assert result.returncode == 2, result.stdout + result.stderr
        assert 'pip install "manymap[dask]"' in result.stderr


def test_address_is_for_the_dask_pool_only() -> None:
    result = run("map", "math:sqrt", "--address", "tcp://127.0.0.1:8786", "4")
    assert result.returncode == 2
    assert "--address is for --pool dask" in result.stderr


def test_info_lists_the_dask_pool_installed_or_not() -> None:
    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)["pools"]["DaskPool"]
    expected = "available (manymap.pools.dask)" if DASK else 'not installed: pip install "manymap[dask]"'
    assert state.startswith(expected), state
