"""pathos' own example scripts, with only their imports changed to manymap, give pathos' output.

The scripts are not copied into this repository: ``nox -s integration`` downloads the
pathos sdist from PyPI and unpacks it into build/pathos-sdist/, and
``MANYMAP_PATHOS_SDIST`` points here at the unpacked ``pathos-<version>/``. Every script
of its ``examples/`` and ``examples2/`` that imports pathos is either run or listed in
:data:`EXCLUDED` with the reason, so a new pathos example cannot go unnoticed.

Each script runs twice in a fresh interpreter: as shipped, on pathos (the reference),
and with its ``pathos`` imports rewritten to the manymap equivalents of the migration
guide (:data:`REWRITES`), nothing else changed. Both runs seed ``random`` and
``numpy.random`` in the main process first (the optimisation examples draw their
starting points there), and their standard outputs must be equal once the lines that
cannot be equal are masked: a pool's ``repr``, wall-clock timings, and numbers that
workers draw from their own unseeded generators (:data:`MASKS`).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from client_support import REQUIRE_ENV

SDIST_ENV = "MANYMAP_PATHOS_SDIST"
EXAMPLE_DIRS = ("examples", "examples2")

# pathos name -> the manymap import that replaces it (``{alias}``: the name the script uses).
_LOCAL, _RPC, _MAPS = "manymap.pools.local", "manymap.pools.rpc", "manymap.maps"
REWRITES: dict[tuple[str, str], str] = {
    **{("pathos.pools", n): f"from {_LOCAL} import {n} as {{alias}}" for n in ("SerialPool", "ThreadPool")},
    ("pathos.pools", "ProcessPool"): f"from {_LOCAL} import ProcessPool as {{alias}}",
    ("pathos.pools", "_ProcessPool"): f"from {_LOCAL} import ProcessPool as {{alias}}",
    ("pathos.pools", "_ThreadPool"): f"from {_LOCAL} import ThreadPool as {{alias}}",
    ("pathos.pools", "ParallelPool"): f"from {_RPC} import ParallelPool as {{alias}}",
    ("pathos.multiprocessing", "ProcessPool"): f"from {_LOCAL} import ProcessPool as {{alias}}",
    ("pathos.multiprocessing", "ProcessingPool"): f"from {_LOCAL} import ProcessPool as {{alias}}",
    ("pathos.threading", "ThreadPool"): f"from {_LOCAL} import ThreadPool as {{alias}}",
    ("pathos.parallel", "ParallelPool"): f"from {_RPC} import ParallelPool as {{alias}}",
    ("pathos.serial", "SerialPool"): f"from {_LOCAL} import SerialPool as {{alias}}",
    **{
        ("pathos.maps", n): f"from {_MAPS} import {n} as {{alias}}"
        for n in ("Map", "Smap", "Imap", "Amap", "Asmap", "Uimap", "Ismap")
    },
    ("pathos.helpers", "freeze_support"): "from multiprocessing import freeze_support as {alias}",
    ("pathos.helpers", "cpu_count"): "from os import cpu_count as {alias}",
    # pathos' shutdown() clears its pool cache; manymap has none, each pool ends its own workers
    ("pathos.helpers", "shutdown"): "{alias} = lambda: None",
}

EXCLUDED: dict[str, str] = {
    "examples/mp_class_example.py": "clears pathos' pool cache (ProcessPool.__state__.clear())",
    "examples/test_ppmap.py": "prints pathos.parallel.stats(), the statistics of pathos' cached ppft server",
    "examples/test_ppmap2.py": (
        "prints pathos.parallel.stats() of the cached ppft server, and needs a ppserver "
        "already listening on localhost:5653"
    ),
    "examples/test_profile.py": (
        "pathos.profile internals (enable_profiling, profiled, process_id); "
        "manymap.profile has its own Profiler instead"
    ),
    "examples/spawn.py": "pathos.util.spawn2, a pathos-only fork helper",
    "examples/xmlrpc_server.py": "pathos.xmlrpc, which manymap does not have; the script serves until killed",
    **{
        f"examples/{name}.py": (
            "not a pool: ssh to the user's own account on 'localhost' with their own keys, "
            "through pathos.secure's launcher interface (manymap.secure's Pipe, Copier and Tunnel "
            "take the command and host in the constructor)"
        )
        for name in ("secure_copy", "secure_hello", "simple_tunnel")
    },
    "examples2/optimize_powell.py": "needs pyina (MPI) for one of its maps",
}

# Substitutions applied to both outputs before comparing them.
_POOL_REPR = (re.compile(r"^<.*[Pp]ool.*>$", re.MULTILINE), "<pool>")
_TIMINGS = (re.compile(r"((?:Time to [^:]*|Iteration time): )\S+"), r"\1<seconds>")
# manymap's ParallelPool prefixes each line a task prints with "[host/worker] " (docs/concepts.md)
_WORKER_PREFIX = (re.compile(r"^\[[^\]\s]+/ppft-\d+\] ", re.MULTILINE), "")
_ALL_INTS_LIST = re.compile(r"^\[[\d, ]*\]$", re.MULTILINE)


def _mask_ints_of_int_lists(text: str) -> str:
    return _ALL_INTS_LIST.sub(lambda m: re.sub(r"\d+", "N", m.group(0)), text)


_REPORT_ITEM = re.compile(
    r"(Optimization terminated successfully\."
    r"|(?:Current function value|Iterations|Function evaluations): [-+]?[\d.]+(?:[eE][-+]?\d+)?)"
)


def _sort_worker_reports(text: str) -> str:
    """The solver reports the workers print between the first and the last ``=====`` rule, sorted.

    Each worker prints its solver's report when its trial ends, so their order depends on
    timing, and concurrent writes split lines (a value can run straight into the next
    worker's "Optimization terminated successfully."), so the values are matched as
    numbers, not up to the next space; the items of the reports are the same. The summary
    after the last rule is compared exactly.
    """
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() == "==============="]
    if len(rules) < 2:
        return text
    first, last = rules[0], rules[-1]
    items = sorted(_REPORT_ITEM.findall("\n".join(lines[first + 1 : last])))
    rule = "==============="  # pathos' ppft pool leaves a space before the last one
    return "\n".join([*lines[:first], rule, *items, rule, *lines[last + 1 :]]) + "\n"


MASKS: dict[str, list[Callable[[str], str]]] = {
    # the "Zzz..." line counts polls of a timed loop
    "examples/async_map.py": [lambda t: re.sub(r"(I'm sleepy\.\.\.\n).*\n", r"\1<zzz>\n", t)],
    # g(x) = int(x * random.random()) runs in the workers, on their own generators
    "examples/nested.py": [_mask_ints_of_int_lists],
    "examples/nested2.py": [_mask_ints_of_int_lists],
    "examples2/optimize_cheby_powell_mpmap.py": [_sort_worker_reports],
    "examples2/optimize_cheby_powell_ppmap.py": [_sort_worker_reports],
}

SEEDED_RUN = (
    "import random, runpy, sys\n"
    "import numpy\n"
    "random.seed(0)\n"
    "numpy.random.seed(0)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def sdist_dir() -> Path | None:
    value = os.environ.get(SDIST_ENV)
    return Path(value) if value else None


def imports_pathos(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pathos":
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "pathos" for a in node.names):
            return True
    return False


def discover(root: Path) -> list[str]:
    """Every example script under ``root`` that imports pathos, as ``dir/name.py``."""
    found = []
    for directory in EXAMPLE_DIRS:
        for script in sorted((root / directory).glob("*.py")):
            if imports_pathos(ast.parse(script.read_text(), str(script))):
                found.append(f"{directory}/{script.name}")
    return found


def rewrite_imports(source: str, name: str) -> str:
    """``source`` with each ``from pathos... import ...`` replaced by its manymap import."""
    lines = source.splitlines(keepends=True)
    nodes = [n for n in ast.walk(ast.parse(source, name)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        if isinstance(node, ast.Import):
            if any(a.name.split(".")[0] == "pathos" for a in node.names):
                raise AssertionError(f"{name}:{node.lineno}: no manymap equivalent for 'import pathos...'")
            continue
        module = node.module or ""
        if module.split(".")[0] != "pathos":
            continue
        replacement = []
        for alias in node.names:
            template = REWRITES.get((module, alias.name))
            if template is None:
                raise AssertionError(f"{name}:{node.lineno}: no manymap equivalent for {module}.{alias.name}")
            replacement.append(template.format(alias=alias.asname or alias.name))
        indent = " " * node.col_offset
        end = node.end_lineno or node.lineno
        lines[node.lineno - 1 : end] = [f"{indent}{line}\n" for line in replacement]
    rewritten = "".join(lines)
    assert not imports_pathos(ast.parse(rewritten, name)), f"{name} still imports pathos"
    return rewritten


def run_script(directory: Path, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONHASHSEED"] = "0"
    return subprocess.run(
        [sys.executable, "-c", SEEDED_RUN, script],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def normalized(example: str, output: str) -> str:
    for pattern, replacement in (_WORKER_PREFIX, _POOL_REPR, _TIMINGS):
        output = pattern.sub(replacement, output)
    for mask in MASKS.get(example, []):
        output = mask(output)
    return output


def test_the_pathos_examples_are_there() -> None:
    """The sdist holds example scripts, and each is run or excluded with its reason."""
    root = sdist_dir()
    if root is None:
        message = f"{SDIST_ENV} is not set (nox -s integration downloads the pathos sdist)"
        if os.environ.get(REQUIRE_ENV, "") == "1":
            pytest.fail(message)
        pytest.skip(f"PATHOS EXAMPLES MISSING: {message}")
    found = discover(root)
    assert len(found) >= 10, f"pathos' sdist at {root} has almost no example scripts: {found}"
    unknown = sorted(set(EXCLUDED) - set(found))
    assert not unknown, f"excluded examples that are no longer in the sdist: {unknown}"


_ROOT = sdist_dir()
EXAMPLES = [] if _ROOT is None else [e for e in discover(_ROOT) if e not in EXCLUDED]


@pytest.mark.parametrize("example", EXAMPLES)
def test_a_pathos_example_runs_unchanged_but_for_its_imports(example: str, tmp_path: Path) -> None:
    assert _ROOT is not None
    source_dir = _ROOT / Path(example).parent
    script = Path(example).name
    on_pathos, on_manymap = tmp_path / "pathos", tmp_path / "manymap"
    shutil.copytree(source_dir, on_pathos)  # the script's helper modules sit beside it
    shutil.copytree(source_dir, on_manymap)
    original = (source_dir / script).read_text()
    (on_manymap / script).write_text(rewrite_imports(original, example))

    reference = run_script(on_pathos, script)
    assert reference.returncode == 0, f"{example} fails on pathos itself:\n{reference.stderr}"
    done = run_script(on_manymap, script)
    assert done.returncode == 0, f"{example} fails on manymap:\n{done.stdout}\n{done.stderr}"
    assert normalized(example, done.stdout) == normalized(example, reference.stdout), done.stderr
