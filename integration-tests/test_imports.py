"""No package of the family has an import cycle among its modules (read from the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from manymap.launcher.testing._imports import import_cycles, module_graph, module_name

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
