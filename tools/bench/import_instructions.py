"""Import cost as instructions executed (valgrind), a figure the machine's load does not move.

The cold table of ``bench_pools.py`` times imports by the clock, which on a
loaded machine varies by half from one run to the next. This counts what
``import MODULE`` executes (callgrind's instruction count of ``python -c
"import MODULE"`` minus that of ``python -c pass``) and gives it as a ratio
to ``import multiprocessing.pool``, as the cold table does. Instructions
leave out what the clock also sees (file system calls, cache misses), so use
it to compare two builds, not in place of the table.

    python tools/bench/import_instructions.py manymap.pools.local manymap.pools.rpc

Run it with the interpreter of the environment to measure (one where the
packages are installed and byte-compiled, as ``nox -s bench`` leaves
``.nox/bench``). Needs ``valgrind``; each count takes some seconds.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

REFERENCE = "multiprocessing.pool"


def instructions(code: str) -> int:
    """Instructions executed by ``python -c code`` (callgrind's ``Collected``)."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("modules", nargs="+", help="modules to import, one count each")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    bare = instructions("pass")
    reference = instructions(f"import {REFERENCE}") - bare
    print(f"{REFERENCE:30s} {reference:>13,d} instructions  1.000x")
    for module in args.modules:
        count = instructions(f"import {module}") - bare
        print(f"{module:30s} {count:>13,d} instructions  {count / reference:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
