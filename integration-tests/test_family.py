"""The manymap family installed together: versions, the shared namespace, errors, the README.

``nox -s integration`` installs every distribution from the checkout
(non-editable) into one environment and runs these tests against it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# distribution -> import path of its code
DISTRIBUTIONS = {
    "manymap-launcher": "manymap.launcher",
    "manymap-serialize": "manymap.serialize",
    "manymap-portpicker": "manymap.portpicker",
    "manymap-secure": "manymap.secure",
    "manymap-pools-local": "manymap.pools.local",
    "manymap-pools-rpc": "manymap.pools.rpc",
    "manymap-pools-dask": "manymap.pools.dask",
    "manymap": "manymap",
}
NAMESPACE_INITS = ("manymap/__init__.py", "manymap/pools/__init__.py")


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed_manymap_distributions() -> dict[str, importlib.metadata.Distribution]:
    found: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        name = _normalize(dist.metadata["Name"])
        if name == "manymap" or name.startswith("manymap-"):
            assert name not in found, f"{name} is installed twice"
            found[name] = dist
    return found


def test_every_distribution_is_installed_once() -> None:
    assert sorted(_installed_manymap_distributions()) == sorted(DISTRIBUTIONS)


@pytest.mark.parametrize(("dist", "module"), DISTRIBUTIONS.items())
def test_version_matches_about(dist: str, module: str) -> None:
    about = importlib.import_module(f"{module}.__about__")
    assert importlib.metadata.version(dist) == about.__version__


@pytest.mark.parametrize(("dist", "module"), DISTRIBUTIONS.items())
def test_about_matches_the_checkout(dist: str, module: str) -> None:
    """The installed version is the one in this checkout, not a stale install."""
    about = importlib.import_module(f"{module}.__about__")
    source = ROOT / "packages" / dist / "src" / Path(*module.split(".")) / "__about__.py"
    scope: dict[str, object] = {}
    exec(source.read_text(), scope)
    assert about.__version__ == scope["__version__"]
    assert Path(about.__file__).resolve() != source.resolve(), "imported from the checkout, not installed"


def test_all_import_into_one_namespace() -> None:
    import manymap
    import manymap.pools

    for namespace in (manymap, manymap.pools):
        assert namespace.__spec__ is not None
        assert namespace.__spec__.origin is None, f"{namespace.__name__} is not a namespace package"
        for entry in namespace.__path__:
            assert not (Path(entry) / "__init__.py").exists(), f"{entry}/__init__.py"

    namespace_dirs = {Path(p).resolve() for p in manymap.__path__}
    for module in DISTRIBUTIONS.values():
        about = importlib.import_module(f"{module}.__about__")
        depth = len(module.split("."))  # manymap.pools.local/__about__.py sits 3 dirs below the root
        top = Path(about.__file__).resolve().parents[depth - 1]
        assert top in namespace_dirs, f"{module} was imported from {top}, outside {namespace_dirs}"
        assert sys.modules[module] is importlib.import_module(module)


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_no_distribution_ships_a_namespace_init(dist: str) -> None:
    files = {str(f) for f in importlib.metadata.files(dist) or ()}
    assert files, f"{dist} lists no installed files"
    shipped = sorted(files.intersection(NAMESPACE_INITS))
    assert not shipped, f"{dist} ships {shipped}"


def test_every_manymap_error_is_reachable_from_the_launcher() -> None:
    from manymap.launcher import ManymapError, SerializationError

    assert issubclass(SerializationError, ManymapError)


def test_serialize_errors_are_manymap_errors() -> None:
    from manymap.launcher import ManymapError, SerializationError

    serialize = importlib.import_module("manymap.serialize")
    public = getattr(serialize, "__all__", None)
    assert public is not None, "manymap.serialize has no __all__ (its public API is not written yet?)"
    errors = [
        obj
        for obj in (getattr(serialize, name) for name in public)
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]
    for error in errors:
        assert issubclass(error, ManymapError), f"manymap.serialize.{error.__name__} is not a ManymapError"

    # What neither pickle nor dill can ship fails with the launcher's
    # SerializationError, naming what failed.
    generator = (i for i in range(3))
    with pytest.raises(SerializationError, match="generator"):
        serialize.dumps({"payload": [generator]})


def test_serialize_round_trips_a_lambda() -> None:
    serialize = importlib.import_module("manymap.serialize")
    offset = 3
    add = serialize.loads(serialize.dumps(lambda x: x + offset))
    assert add(4) == 7


def _quickstart_commands() -> list[str]:
    """The shell lines of the README's Quickstart code block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    return [line.removeprefix("$ ") for line in block.splitlines() if line.strip()]


def test_readme_quickstart_has_two_single_line_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2, commands
    assert commands[1] == "python -m pip install nox uv && python -m nox"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    command = _quickstart_commands()[1]
    assert command in [line.strip() for line in ci.splitlines()], f".ci/run does not run {command!r}"


def test_readme_quickstart_demo_runs() -> None:
    """Quickstart command 1 after its install: the installed ``manymap demo``, as a user runs it."""
    install, run = _quickstart_commands()[0].split(" && ", 1)
    assert install == "python -m pip install ./packages/*"
    argv = shlex.split(run)
    assert argv == ["manymap", "demo"], argv
    script = Path(sys.executable).with_name("manymap")
    assert script.is_file(), f"the manymap command is not installed next to {sys.executable}"
    result = subprocess.run(
        [str(script), *argv[1:]], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "pool          workers  seconds  speed-up  result" in out
    for pool in ("SerialPool", "ThreadPool", "ProcessPool", "ParallelPool"):
        assert "x  ok" in rows[pool], out
    assert "cannot ship it:" in rows["multiprocessing.Pool.map"], out
    assert "manymap ProcessPool.map                 ok [0, 3, 6, 9, 12, 15, 18, 21]" in out
    assert "raised WorkerLostError" in out
    assert "all 8 results right, task 5 retried 1 time(s)" in out
    assert "every part worked as shown" in out
