"""Skip, or fail when CI requires them, the tests this machine cannot host."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from ._common import REQUIRE_ENV

__all__ = ["NO_HOSTS", "required", "unavailable"]

#: What every skip for want of test hosts says (the plugin's summary counts these).
NO_HOSTS = "NO TEST HOSTS ON THIS MACHINE"


def required() -> bool:
    """Whether ``MANYMAP_REQUIRE_SSHD=1``: then a missing sshd or namespace support fails the tests."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test (or fixture) loudly with ``reason``, or fail it when required."""
    if required():
        pytest.fail(f"{REQUIRE_ENV}=1 but this machine cannot run the test hosts: {reason}", pytrace=False)
    pytest.skip(f"{NO_HOSTS} (set {REQUIRE_ENV}=1 to fail instead): {reason}")
