"""The ``manymap`` command: ``demo``, ``info``, ``map``, and the package commands handed over.

``main(argv)`` sends ``connect``, ``server``, ``portpicker`` and
``serialize`` (everything after the subcommand, ``--help`` included) to the
console script of the package that provides it, found through its entry
point; the other subcommands are parsed here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from manymap.__about__ import __version__
from manymap._demo import demo, demo_task
from manymap._demo import usable_cores as _usable_cores
from manymap._pools import KNOWN_POOLS, announced_pools, load_pool
from manymap.launcher import progress_bar

__all__ = ["demo_task", "main"]

PROG = "manymap"

#: subcommand -> (distribution, console script) it hands over to.
HANDOVER = {
    "connect": ("manymap-secure", "manymap-connect"),
    "server": ("manymap-pools-rpc", "manymap-server"),
    "portpicker": ("manymap-portpicker", "manymap-portpicker"),
    "serialize": ("manymap-serialize", "manymap-serialize"),
}

_EPILOG = """\
examples:
  manymap demo
  manymap info
  seq 10 | manymap map math:factorial --json --pool process -n 4
  printf '[2, 10]\\n[3, 4]\\n' | manymap map builtins:pow --json --star
  manymap map "lambda x: x + 1" --json 1 2 3
  manymap connect HOST --remote-port 8080      (= manymap-connect ...)

Each subcommand has its own --help.
"""


class _UsageError(Exception):
    """A mistake in the command line that argparse cannot see: exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``manymap`` (the hand-over subcommands parse their own arguments)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="manymap: one map/apply interface for serial, thread, process and remote parallel "
        "computing. Run `manymap demo` to see it work on this machine.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"manymap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo_parser = sub.add_parser(
        "demo",
        help="show, measured on this machine, what manymap does: speed-up, closures, a killed worker",
        description="Measure on this machine: (1) a CPU-bound map on the builtin map, SerialPool, "
        "ThreadPool, ProcessPool and (when manymap-pools-rpc provides it) ParallelPool, with each one's "
        "time and speed-up; (2) a closure given to multiprocessing.Pool and ProcessPoolExecutor (their "
        "error is shown) and to manymap's ProcessPool; (3) a task that SIGKILLs its own worker, without "
        "and with a retry. Nothing needs setting up. Exit status 1 if a part does not work as shown.",
    )
    demo_parser.add_argument("--tasks", type=_positive, default=32, help="number of tasks (default 32)")
    demo_parser.add_argument(
        "--seconds",
        type=float,
        default=1.5,
        help="about how long the builtin map of part 1 takes; the work per task is sized to it (default 1.5)",
    )
    demo_parser.add_argument(
        "--size", type=_positive, default=None, help="work per task, instead of sizing it by --seconds"
    )
    demo_parser.add_argument(
        "-n", "--workers", type=_positive, default=None, help="workers per pool (default: cores, at most 4)"
    )

    info = sub.add_parser(
        "info",
        help="installed manymap distributions, pools available, cores",
        description="Print the installed manymap distributions and their versions, the pools that are "
        "available, the cores of this machine, Python, and the registered hosts.",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    mapper = sub.add_parser(
        "map",
        help="map MODULE:FUNC over input lines, in parallel; print the results in order",
        description="Call MODULE:FUNC (or a lambda) on every ITEM given, else on every input line (stdin, "
        "or --input FILE), in parallel and print one result per line, in input order. Each item is one "
        "string argument; with --json each is a JSON value (blank lines skipped) and each result is "
        "printed as JSON. A progress bar goes to stderr when it is a terminal. Exit status 1 when a task "
        "fails, 2 on a usage error.",
        epilog="MODULE is imported as by `python -m`: the current directory comes first on the path.",
    )
    mapper.add_argument(
        "function",
        metavar="MODULE:FUNC",
        help='the function, e.g. math:sqrt or pkg.mod:f, or a lambda expression, e.g. "lambda x: x + 1"',
    )
    mapper.add_argument(
        "items", metavar="ITEM", nargs="*", help="the items to map over (default: the input lines)"
    )
    mapper.add_argument(
        "--pool",
        choices=("process", "thread", "serial", "parallel", "dask"),
        default="process",
        help="the pool to run on (default process; parallel needs manymap-pools-rpc, "
        'dask needs manymap-pools-dask: pip install "manymap[dask]")',
    )
    mapper.add_argument(
        "--address",
        metavar="SCHEDULER",
        help="for --pool dask: the address of a running Dask scheduler to join (tcp://host:8786); "
        "without it the pool starts its own cluster on this machine",
    )
    mapper.add_argument(
        "-n",
        "--workers",
        type=_positive,
        default=None,
        help="workers (default: cores); with --servers, local workers besides the servers' (default none)",
    )
    mapper.add_argument(
        "--servers",
        nargs="+",
        metavar="SERVER",
        help="RPC servers for --pool parallel: host:port of running manymap-servers (with --secret-file), "
        "ssh hosts (ssh://user@host or an ssh_config name) on which the pool starts its own, "
        "or names of registered hosts (manymap.hosts)",
    )
    mapper.add_argument(
        "--secret-file",
        metavar="FILE",
        help="the secret of the host:port servers of --servers (never on the command line)",
    )
    mapper.add_argument(
        "-i", "--input", metavar="FILE", help="read the input lines from FILE instead of stdin"
    )
    mapper.add_argument("--json", action="store_true", help="JSON lines in, JSON lines out")
    mapper.add_argument("--star", action="store_true", help="with --json: a JSON array is FUNC's arguments")
    mapper.add_argument("--timeout", type=float, default=None, help="seconds a task may run")
    mapper.add_argument("--retries", type=int, default=0, help="re-runs of a task whose worker was lost")
    mapper.add_argument("--chunksize", type=_positive, default=None, help="tasks per batch")
    progress = mapper.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="progress bar"
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    for name, (dist, script) in HANDOVER.items():
        sub.add_parser(name, help=f"= {script} (from {dist}); `manymap {name} --help` for its options")
    return parser


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise LookupError(name)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``manymap`` command; returns its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in HANDOVER:
        return _hand_over(args_list[0], args_list[1:])
    parser = build_parser()
    try:
        if args_list and args_list[0] == "map":  # ITEMs may come before and after the options
            args = _subcommand(parser, "map").parse_intermixed_args(args_list[1:])
            args.command = "map"
        else:
            args = parser.parse_args(args_list)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse reported
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        if args.command == "demo":
            if args.seconds <= 0:
                raise _UsageError(f"--seconds must be positive, not {args.seconds}")
            return demo(args.tasks, args.size, args.seconds, args.workers)
        if args.command == "info":
            return _info(as_json=args.json)
        if args.command == "map":
            return _map(args)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    parser.print_help(sys.stderr)
    return 2


# ----------------------------------------------------------------- hand-over


def _hand_over(name: str, argv: list[str]) -> int:
    dist, script = HANDOVER[name]
    entry = next(iter(importlib.metadata.entry_points(group="console_scripts", name=script)), None)
    if entry is None:
        print(
            f"{PROG} {name}: the {script} command is not installed here (install {dist})",
            file=sys.stderr,
        )
        return 2
    function: Callable[..., Any] = entry.load()
    parameters = inspect.signature(function).parameters
    try:
        status = function(argv, prog=f"{PROG} {name}") if "prog" in parameters else function(argv)
    except SystemExit as exit_:
        status = exit_.code
    if status is None:
        return 0
    return status if isinstance(status, int) else 1


# ---------------------------------------------------------------------- info


def _distributions() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if name == "manymap" or name.startswith("manymap-"):
            found[name] = dist.version
    return dict(sorted(found.items()))


def _pools() -> dict[str, str]:
    pools: dict[str, str] = {}
    for module, names in (
        ("manymap.pools.local", ("SerialPool", "ThreadPool", "ProcessPool")),
        ("manymap.pools.rpc", ("ParallelPool",)),
    ):
        try:
            importlib.import_module(module)
            state = f"available ({module})"
        except ImportError as exc:  # a broken installation: info says so
            state = f"not available: {exc}"
        for name in names:
            pools[name] = state
    announced = announced_pools()  # found without importing them
    for name, (class_name, hint) in KNOWN_POOLS.items():
        if name not in announced:
            pools[class_name] = f"not installed: {hint}"
    for name, entry in announced.items():
        pools[entry.value.rpartition(":")[2] or name] = f"available ({entry.value.partition(':')[0]})"
    return pools


def _info(*, as_json: bool) -> int:
    from manymap import hosts

    try:
        host_names = hosts.names()
        hosts_note = ""
    except (OSError, ValueError) as exc:
        host_names, hosts_note = [], f" (cannot read it: {exc})"
    report: dict[str, Any] = {
        "distributions": _distributions(),
        "pools": _pools(),
        "cores": {"total": os.cpu_count() or 1, "usable": _usable_cores()},
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "hosts": {"file": str(hosts.default_hosts_file()), "registered": host_names},
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print("distributions:")
    for name, version in report["distributions"].items():
        print(f"  {name:<22} {version}")
    print("pools:")
    for name, state in report["pools"].items():
        print(f"  {name:<22} {state}")
    print(f"cores: {report['cores']['usable']} usable of {report['cores']['total']}")
    print(f"python: {report['python']['version']} ({sys.executable})")
    print(f"hosts file: {report['hosts']['file']}{hosts_note}")
    print(f"registered hosts: {', '.join(host_names) or 'none'}")
    return 0


# ----------------------------------------------------------------------- map


def _load_function(spec: str) -> Callable[..., Any]:
    if spec.lstrip().startswith("lambda"):
        return _eval_lambda(spec)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise _UsageError(f"expected MODULE:FUNC or a lambda expression, got {spec!r}")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    # Worker processes (whatever their start method) import the module too.
    paths = [here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _UsageError(f"{module_name} has no attribute {attribute!r}") from None
    if not callable(obj):
        raise _UsageError(f"{spec} is not callable: {obj!r}")
    function: Callable[..., Any] = obj
    return function


def _eval_lambda(spec: str) -> Callable[..., Any]:
    """The function of a ``lambda`` expression typed on the command line (the user's own code).

    It is made in a fresh ``__main__``-like namespace, so it ships by value to worker processes.
    """
    try:
        function = eval(compile(spec.strip(), "<command line>", "eval"), {"__name__": "__main__"})
    except SyntaxError as exc:
        raise _UsageError(f"not a valid lambda expression: {spec!r}: {exc.msg}") from exc
    if not callable(function):
        raise _UsageError(f"{spec!r} is not callable")
    result: Callable[..., Any] = function
    return result


def _read_items(args: argparse.Namespace) -> list[Any]:
    if args.items:
        if args.input is not None:
            raise _UsageError("give ITEMs or --input FILE, not both")
        lines = list(args.items)
    elif args.input is not None:
        try:
            with open(args.input, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except OSError as exc:
            raise _UsageError(f"cannot read {args.input}: {exc}") from exc
    else:
        lines = sys.stdin.read().splitlines()
    if not args.json:
        return [(line,) for line in lines]
    items: list[Any] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _UsageError(f"input line {number} is not JSON: {exc}") from exc
        if args.star:
            if not isinstance(value, list):
                raise _UsageError(f"--star: input line {number} is not a JSON array: {line}")
            items.append(tuple(value))
        else:
            items.append((value,))
    return items


def _make_pool(args: argparse.Namespace) -> Any:
    if (args.servers or args.secret_file) and args.pool != "parallel":
        raise _UsageError("--servers and --secret-file are for --pool parallel")
    if args.address and args.pool != "dask":
        raise _UsageError("--address is for --pool dask")
    if args.pool == "dask":
        try:
            dask_pool = load_pool("dask")
        except LookupError as exc:
            raise _UsageError(f"--pool dask: {exc}") from exc
        if args.address:
            return dask_pool(args.workers, address=args.address)
        return dask_pool(args.workers)
    if args.pool == "parallel":
        from manymap.pools.rpc import ParallelPool

        if args.servers:
            secret = None
            if args.secret_file is not None:
                try:
                    with open(args.secret_file, encoding="utf-8") as file:
                        secret = file.read().strip()
                except OSError as exc:
                    raise _UsageError(f"cannot read {args.secret_file}: {exc}") from exc
            return ParallelPool(args.workers or 0, servers=tuple(args.servers), secret=secret)
        return ParallelPool(args.workers)
    from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

    if args.pool == "serial":
        return SerialPool()
    if args.pool == "thread":
        return ThreadPool(args.workers)
    return ProcessPool(args.workers)


def _map(args: argparse.Namespace) -> int:
    if args.star and not args.json:
        raise _UsageError("--star needs --json")
    function = _load_function(args.function)
    items = _read_items(args)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    pool = _make_pool(args)
    bar = progress_bar(len(items), f"{PROG} map") if show else None
    options: dict[str, Any] = {"timeout": args.timeout, "retries": args.retries, "progress": bar}
    if args.chunksize is not None:
        options["chunksize"] = args.chunksize
    out = sys.stdout
    failed = False
    try:
        results: Iterable[Any] = pool.ismap(function, items, **options)
        for result in results:
            out.write((json.dumps(result) if args.json else str(result)) + "\n")
            out.flush()
    except Exception as exc:
        failed = True
        notes = getattr(exc, "__notes__", [])
        message = f"{type(exc).__name__}: {exc}" + "".join(f"\n  {note}" for note in notes)
        print(f"{PROG} map: a task failed: {message}", file=sys.stderr)
        if isinstance(exc, TypeError) and not args.json and _json_lookalikes(items):
            print(
                f'{PROG} map: hint: without --json every item is a string ("1", not 1); '
                "add --json to read each item as a JSON value (numbers, lists, ...)",
                file=sys.stderr,
            )
    finally:
        if failed:
            pool.terminate()
        else:
            pool.close()
        pool.join()
    return 1 if failed else 0


def _json_lookalikes(items: list[Any]) -> bool:
    """Whether some string items read as JSON numbers, lists, objects, booleans or null."""
    for item, *_ in items:
        try:
            value = json.loads(item)
        except (TypeError, ValueError):
            continue
        if not isinstance(value, str):
            return True
    return False
