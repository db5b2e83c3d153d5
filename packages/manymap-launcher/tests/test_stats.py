"""Per-function task costs, which automatic batch sizes learn from."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from manymap.launcher._stats import StatsRecorder


def add(x: int, y: int) -> int:
    return x + y


def make_adder(k: int) -> Callable[[int], int]:
    return lambda x: x + k


def test_a_lambda_made_afresh_has_the_cost_of_its_code() -> None:
    stats = StatsRecorder()
    stats.record_cost(make_adder(1), 10, 1e-5)
    assert stats.task_seconds(make_adder(2)) == pytest.approx(1e-6)


def test_a_partial_made_afresh_has_the_cost_of_its_function() -> None:
    stats = StatsRecorder()
    stats.record_cost(functools.partial(add, 1), 10, 2e-5)
    assert stats.task_seconds(functools.partial(add, y=5)) == pytest.approx(2e-6)
    assert stats.task_seconds(make_adder(1)) is None


def test_costs_are_a_moving_average() -> None:
    stats = StatsRecorder()
    stats.record_cost(add, 1, 1.0)
    stats.record_cost(add, 1, 3.0)
    assert stats.task_seconds(add) == pytest.approx(2.0)
