"""What a package's modules import: the module graph, its cycles, and what a fresh import loads.

`module_graph()` reads a package's source files with `ast` (nothing is
imported) and gives, for each module, the modules of the same package its code
imports when it runs: at module level and inside functions alike, but not under
``if TYPE_CHECKING:``. ``import a.b.c`` is an edge to ``a.b.c``;
``from a.b import x`` to ``a.b.x`` when that is a module, else to ``a.b``
(whose ``__init__`` must have run to hold ``x``). The parent packages an
import runs on the way are not edges: a submodule needs its package to exist,
not to be finished.

`import_cycles()` finds the strongly connected components of that graph
(Tarjan's algorithm, iterative): every component of two or more modules, or a
module that imports itself, is a cycle.

`fresh_import_loads()` imports a module in a new interpreter and says which of
the named modules that import put in ``sys.modules``; `fresh_run_loads()` does
the same for a whole script.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["fresh_import_loads", "fresh_run_loads", "import_cycles", "module_graph", "module_name"]


def module_name(relative: str | Path) -> str | None:
    """The dotted module name of a source file given relative to its import root, else ``None``."""
    path = Path(relative)
    if path.suffix != ".py":
        return None
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


def module_graph(sources: Mapping[str, Path]) -> dict[str, set[str]]:
    """The import edges among ``sources`` (module name -> source file), as described above."""
    modules = set(sources)
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.module, node.level)
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        edges.add(target)
                    elif base in modules:
                        edges.add(base)
        graph[name] = edges
    return graph


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node of ``tree`` but the bodies of ``if TYPE_CHECKING:`` (their ``else`` stays)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _resolve(name: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The cycles of ``graph``: each strongly connected component of two or more
    modules, or a module with an edge to itself, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))
    return sorted(cycles)


def fresh_import_loads(module: str, watched: Iterable[str], *, timeout: float = 120.0) -> set[str]:
    """Which of ``watched`` (module names) ``import module`` loads in a new interpreter."""
    return fresh_run_loads(f"__import__({module!r})", watched, timeout=timeout, what=f"importing {module}")


def fresh_run_loads(
    code: str, watched: Iterable[str], *, timeout: float = 120.0, what: str = "the code"
) -> set[str]:
    """Which of ``watched`` (module names) running ``code`` (a script's text) loads in a
    new interpreter; ``what`` names the code in the error when it fails."""
    names = sorted(set(watched))
    script = (  # json is imported after the look: it is a watched module
        f"import sys\n{code}\n"
        f"loaded = [n for n in {names!r} if n in sys.modules]\n"
        "import json\n"
        "print(json.dumps(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{what} in a fresh interpreter failed:\n{done.stderr}")
    return set(json.loads(done.stdout.strip().splitlines()[-1]))
