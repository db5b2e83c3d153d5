"""Fixtures of the real-client suite: one pool of each kind (made by ``client_support``).

Every test here hands a manymap pool to a real third-party library exactly as that
library's documentation shows, and compares the result with the library's own serial
run. ``pool`` is parametrised over the five kinds of pool (``serial``, ``thread``,
``process``, ``parallel``: local ppft workers, ``parallel-ssh``: a ``manymap-server``
started over ssh on the loopback ``sshd`` of tools/testhosts), two workers each.

The user code the libraries call lives in ``client_code.py``, an importable module as
it would be in a user's project: this directory is put on ``sys.path`` and on the
``PYTHONPATH`` of every worker (the ssh host gets it through its
:class:`manymap.hosts.Host` ``env``, as a user's cluster would), so its module-level
functions go by reference and its closures by value.

The clients: emcee, zeus and dynesty (``pool=``), scipy's ``differential_evolution``
(``workers=pool.map``), mystic (``map=pool.map``, ``SetMapper``), code written for
schwimmbad's pools, and pathos' own example scripts (test_pathos_examples.py).
``nox -s integration`` installs them all (the noxfile's ``CLIENTS``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # ``import client_code`` in the tests (pytest --import-mode=importlib)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))

from client_support import POOL_KINDS, end, make_pool  # noqa: E402  (needs the path above)


@pytest.fixture(scope="module", params=POOL_KINDS)
def pool_kind(request: pytest.FixtureRequest) -> str:
    """The kind of pool of the test: each test runs once per kind."""
    return str(request.param)


@pytest.fixture(scope="module")
def pool(pool_kind: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """One pool of ``pool_kind`` shared by the tests of a module (they leave it open)."""
    made = make_pool(pool_kind, request)
    try:
        yield made
    finally:
        end(made)


@pytest.fixture
def new_pool(pool_kind: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """A factory of fresh pools of ``pool_kind``, for code that closes the pool it is given."""
    made: list[Any] = []

    def factory() -> Any:
        made.append(make_pool(pool_kind, request))
        return made[-1]

    try:
        yield factory
    finally:
        for each in made:
            end(each)
