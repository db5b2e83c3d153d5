"""The ``manymap-serialize`` command (also ``python -m manymap.serialize``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from manymap.serialize.__about__ import __version__
from manymap.serialize._check import check

__all__ = ["main"]

PROG = "manymap-serialize"

_DESCRIPTION = """\
Tools for manymap's serialization: the stdlib pickle fast path, by value only
for what pickle cannot ship by reference (lambdas, closures, functions and
classes from __main__; classes through dill), a versioned wire format.
"""

_CHECK_DESCRIPTION = """\
Import MODULE, look up NAME in it and report whether that object can be sent
to another process or host: by pickle, or with some functions / classes by
value through dill (named), or, if it cannot, the attribute path to the first
part that cannot be serialized and why.

Exit status: 0 it can be serialized, 1 it cannot, 2 usage error (bad
argument, module cannot be imported, no such name). The current directory is
put on the import path first, as `python -m` does.
"""

_CHECK_EPILOG = """\
examples:
  manymap-serialize check mypkg.tasks:work
  manymap-serialize check mypkg.config:SETTINGS.handlers
  python -m manymap.serialize check mymodule:make_job
"""


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"manymap-serialize {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check_parser = commands.add_parser(
        "check",
        help="report whether MODULE:NAME can be serialized, and how",
        description=_CHECK_DESCRIPTION,
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check_parser.add_argument(
        "target",
        metavar="MODULE:NAME",
        help="an importable module and a (dotted) name in it, e.g. mypkg.tasks:work",
    )
    return parser


def _resolve(target: str) -> object:
    module_name, sep, name = target.partition(":")
    if not sep or not module_name or not name:
        raise _UsageError(f"expected MODULE:NAME, got {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:
        raise _UsageError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    parts = name.split(".")
    for index, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            owner = f"module {module_name!r}" if index == 0 else f"{module_name}:{'.'.join(parts[:index])}"
            raise _UsageError(f"{owner} has no attribute {part!r}") from exc
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 cannot serialize, 2 usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse reported
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        obj = _resolve(args.target)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    report = check(obj, name=args.target)
    print(report)
    return 0 if report.ok else 1
