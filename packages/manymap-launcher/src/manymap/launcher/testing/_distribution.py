"""``DistributionConformance``: the packaging rules, as tests of an installed distribution.

Every manymap distribution is installed (not imported from ``src/``) in its
test session; subclassing this class with the distribution's name and import
path proves that what is installed is this checkout's, that the shared
namespaces stay PEP 420 namespaces, that the package is typed, that its modules
import each other without a cycle, and that importing it loads none of the
heavy modules it defers (``lazy_modules``)::

    class TestDistribution(DistributionConformance):
        distribution = "manymap-portpicker"
        module = "manymap.portpicker"
        scripts = ("manymap-portpicker",)
        lazy_modules = ("paramiko",)
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from manymap.launcher.testing import _imports

__all__ = ["DistributionConformance"]


class DistributionConformance:
    """Packaging checks of one installed distribution.

    Attributes:
        distribution: the distribution's name, e.g. ``"manymap-secure"``.
        module: the import path of its code, e.g. ``"manymap.secure"``.
        namespaces: the namespace packages it shares with its siblings.
        public_modules: the modules whose ``__all__`` is the public API
            (default: ``module`` alone).
        scripts: the console scripts it installs; each must answer ``--version``.
        lazy_modules: top-level modules a fresh ``import`` of ``module`` must
            not load (they are imported when a call first needs them).
    """

    distribution: str
    module: str
    namespaces: tuple[str, ...] = ("manymap",)
    public_modules: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()
    lazy_modules: tuple[str, ...] = ()

    #: What the packages a plain ``map`` goes through (launcher, serialize, the
    #: pools) defer: their ``lazy_modules``.
    FAMILY_DEFERRED = (
        "asyncio",
        "copy",
        "dataclasses",
        "dill",
        "hashlib",
        "hmac",
        "importlib",
        "importlib.metadata",
        "json",
        "multiprocess",
        "paramiko",
        "ppft",
        "random",
        "secrets",
        "shutil",
        "subprocess",
        "tempfile",
        # 5 to 10 ms, which multiprocessing.pool never pays: the family's modules take
        # TYPE_CHECKING from a local ``TYPE_CHECKING = False`` and import typing under it.
        "typing",
    )

    def _files(self) -> set[str]:
        files = {str(f) for f in importlib.metadata.files(self.distribution) or ()}
        assert files, f"{self.distribution} lists no installed files"
        return files

    def test_version_matches_about(self) -> None:
        about = importlib.import_module(f"{self.module}.__about__")
        assert importlib.metadata.version(self.distribution) == about.__version__

    def test_imported_from_the_installed_distribution(self) -> None:
        about = importlib.import_module(f"{self.module}.__about__")
        dist = importlib.metadata.distribution(self.distribution)
        shipped = {Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()}
        assert Path(str(about.__file__)).resolve() in shipped, (
            f"{about.__file__} is not a file of the installed {self.distribution} distribution"
        )

    def test_namespaces_are_pep420(self) -> None:
        for namespace in self.namespaces:
            package = importlib.import_module(namespace)
            assert package.__spec__ is not None
            assert package.__spec__.origin is None, f"{namespace} is a regular package"
            assert getattr(package, "__file__", None) is None
            assert list(package.__path__), f"{namespace} has an empty __path__"
            for path in package.__path__:
                assert not (Path(path) / "__init__.py").exists(), (
                    f"{path}/__init__.py makes {namespace} a regular package"
                )

    def test_ships_no_namespace_init(self) -> None:
        files = self._files()
        for namespace in self.namespaces:
            init = namespace.replace(".", "/") + "/__init__.py"
            assert init not in files, f"{self.distribution} ships {init}"

    def test_ships_py_typed(self) -> None:
        assert self.module.replace(".", "/") + "/py.typed" in self._files()

    def test_public_names_show_their_public_path(self) -> None:
        """A public class or function names a public module (tracebacks and reprs show
        ``manymap.launcher.PoolClosedError``, never ``manymap.launcher._errors...``),
        and that module really holds it under that name."""
        wrong = []
        for module_name in self.public_modules or (self.module,):
            module = importlib.import_module(module_name)
            for name in module.__all__:
                obj = getattr(module, name)
                if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                where = obj.__module__
                private = [part for part in where.split(".") if part.startswith("_")]
                home = importlib.import_module(where)
                if private or getattr(home, obj.__qualname__, None) is not obj:
                    wrong.append(f"{module_name}.{name} reads as {where}.{obj.__qualname__}")
        assert not wrong, "public names showing a private path: " + "; ".join(wrong)

    def test_dir_lists_every_public_name_before_it_is_loaded(self) -> None:
        """``dir()`` of a fresh import lists all of ``__all__``, names loaded on first
        access included (tab completion and ``help()`` see them)."""
        for module_name in self.public_modules or (self.module,):
            code = f"import {module_name} as m; print(sorted(set(m.__all__) - set(dir(m))))"
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == "[]", f"dir({module_name}) misses {done.stdout.strip()}"

    def test_scripts_print_their_version(self) -> None:
        """Each installed console script answers ``--version`` with the distribution and its version."""
        about = importlib.import_module(f"{self.module}.__about__")
        for script in self.scripts:
            command = _installed_script(script)
            done = subprocess.run(
                [command, "--version"], capture_output=True, text=True, timeout=60, check=False
            )
            assert done.returncode == 0, f"{script} --version exited {done.returncode}: {done.stderr}"
            assert done.stdout.strip() == f"{self.distribution} {about.__version__}", (
                f"{script} --version printed {done.stdout!r}"
            )

    def test_modules_import_each_other_without_a_cycle(self) -> None:
        """The installed modules' imports (module level and in functions alike, but not
        ``if TYPE_CHECKING:``) form a DAG: each layer is read once, in one direction."""
        dist = importlib.metadata.distribution(self.distribution)
        sources: dict[str, Path] = {}
        for file in dist.files or ():
            name = _imports.module_name(str(file))
            if name is not None and name.split(".")[: len(self.module.split("."))] == self.module.split("."):
                sources[name] = Path(str(dist.locate_file(file)))
        assert sources, f"{self.distribution} lists no modules of {self.module}"
        cycles = _imports.import_cycles(_imports.module_graph(sources))
        assert not cycles, "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)

    def test_import_defers_its_heavy_modules(self) -> None:
        """A fresh ``import`` of the package loads none of ``lazy_modules``."""
        loaded = _imports.fresh_import_loads(self.module, self.lazy_modules)
        assert not loaded, f"import {self.module} loads {sorted(loaded)}"

    def test_import_leaves_the_garbage_collector_on(self) -> None:
        """The packages import their modules with the collector held off
        (``lowlevel.collector_paused``), the names loaded on first access too: it is on after."""
        modules = [self.module, *getattr(self, "public_modules", ())]
        code = "import gc, importlib\n" + "".join(
            f"m = importlib.import_module({name!r})\n[getattr(m, n) for n in getattr(m, '__all__', ())]\n"
            for name in modules
        )
        code += "assert gc.isenabled(), 'the garbage collector is off after the imports'\n"
        _imports.fresh_run_loads(code, (), what=f"importing {', '.join(modules)}")  # raises if it fails

    @pytest.fixture(autouse=True)
    def _named(self) -> None:
        if not getattr(self, "distribution", None) or not getattr(self, "module", None):
            pytest.fail(f"{type(self).__name__} must set `distribution` and `module`")


def _installed_script(script: str) -> str:
    """The path of an installed console script: next to this interpreter, or in its scripts dir."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / script
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"the console script {script} is not installed next to {sys.executable}")
