"""No package of the family has an import cycle among its modules (read from the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from manymap.launcher.testing import DistributionConformance
from manymap.launcher.testing._imports import fresh_import_loads, import_cycles, module_graph, module_name

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(ROOT.glob("packages/*/src"))


def _modules(src: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in src.rglob("*.py"):
        name = module_name(path.relative_to(src))
        if name is not None:
            found[name] = path
    return found


def test_every_package_is_checked() -> None:
    assert len(SOURCES) >= 7, SOURCES


@pytest.mark.parametrize("src", SOURCES, ids=[src.parent.name for src in SOURCES])
def test_modules_import_each_other_without_a_cycle(src: Path) -> None:
    modules = _modules(src)
    assert modules, f"no modules under {src}"
    cycles = import_cycles(module_graph(modules))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


DEFERRED = DistributionConformance.FAMILY_DEFERRED


@pytest.mark.parametrize("module", ["manymap.launcher", "manymap.pools.local", "manymap.pools.rpc"])
def test_a_fresh_import_loads_nothing_a_plain_map_does_not_use(module: str) -> None:
    """With the whole family installed, importing a pool package loads none of the
    modules a call imports when it first needs them."""
    loaded = fresh_import_loads(module, DEFERRED)
    assert not loaded, f"import {module} loads {sorted(loaded)}"
