"""The import-graph helper of ``DistributionConformance`` finds the cycles it must and only those."""

from __future__ import annotations

import textwrap
from pathlib import Path

from manymap.launcher.testing._imports import fresh_import_loads, import_cycles, module_graph, module_name


def _package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        name = module_name(relative)
        assert name is not None
        sources[name] = path
    return sources


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    sources = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg._a import a\n",
            "pkg/_a.py": "from pkg import _b\ndef a(): ...\n",
            "pkg/_b.py": "def b():\n    from ._a import a\n    return a\n",
            "pkg/_c.py": "import pkg._b\n",
        },
    )
    graph = module_graph(sources)
    assert graph["pkg"] == {"pkg._a"}
    assert graph["pkg._a"] == {"pkg._b"}
    assert graph["pkg._b"] == {"pkg._a"}
    assert graph["pkg._c"] == {"pkg._b"}
    assert import_cycles(graph) == [["pkg._a", "pkg._b"]]


def test_type_checking_imports_and_parent_packages_are_not_edges(tmp_path: Path) -> None:
    sources = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg._a import a\n",
            "pkg/_a.py": (
                "from typing import TYPE_CHECKING\n"
                "import pkg._b\n"
                "if TYPE_CHECKING:\n    from pkg._c import C\nelse:\n    import json\n"
                "def a(): ...\n"
            ),
            "pkg/_b.py": "from pkg import _c\n",
            "pkg/_c.py": "from . import _d\nclass C: ...\n",
            "pkg/_d.py": "import os\n",
        },
    )
    graph = module_graph(sources)
    assert graph["pkg._a"] == {"pkg._b"}
    assert graph["pkg._c"] == {"pkg._d"}
    assert import_cycles(graph) == []


def test_a_module_importing_from_its_own_package_init_is_a_cycle(tmp_path: Path) -> None:
    sources = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg._a import a\nX = 1\n",
            "pkg/_a.py": "from pkg import X\ndef a(): ...\n",
        },
    )
    assert import_cycles(module_graph(sources)) == [["pkg", "pkg._a"]]


def test_fresh_import_reports_what_it_loaded() -> None:
    assert fresh_import_loads("json", ["json", "asyncio", "decimal"]) == {"json"}
    assert fresh_import_loads("asyncio", ["asyncio", "decimal"]) == {"asyncio"}
