"""The one noxfile of the manymap monorepo.

Plain ``nox`` runs the default sessions: ``tests`` and ``typecheck`` for every
package, ``integration``, ``lint``, ``build`` and ``docs``. ``nox -t
manymap-serialize`` runs the sessions of one package (its tests and its type
check); ``nox -s bench`` runs the benchmarks, which are not part of the
default run.

Every session installs what it tests from the checkout, non-editable, so the
tests see the distributions as a user would get them. A package is always
installed together with its in-repo dependency closure in a single install
command, so the installer takes the siblings from the checkout instead of
looking for them on an index.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"  # nox.param(tags=...), session(default=False)
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
nox.options.error_on_external_run = True
nox.options.sessions = ["tests", "integration", "lint", "typecheck", "build", "docs"]
# A script that starts nox as a background job (`nox &`) leaves SIGINT ignored in it,
# and whatever it starts inherits that: the tests that Ctrl-C a script of theirs would
# see it ignore the Ctrl-C. A handler of nox's own is reset to the default in what it runs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
# The private test fixtures (a real sshd, network namespace hosts; tools/testhosts): a
# pytest plugin installed into the test sessions whose tests need ssh, never published.
TESTHOSTS = "./tools/testhosts"
TESTHOSTS_DIST = "testhosts-manymap"
DIST_DIR = ROOT / "build" / "dist"
BENCH_DIR = ROOT / "build" / "bench"


@dataclass(frozen=True)
class Package:
    """One distribution of the monorepo.

    Attributes:
        requires: the in-repo distributions it depends on (DESIGN.md's DAG).
        test_requires: what its tests need beyond pytest and the package.
        typecheck_requires: stub packages mypy needs for its third-party imports.
        workers: pytest processes its tests run in (pytest-xdist, grouped by module
            and class, so a class's shared pool or cluster stays in one process).
            Tests that mostly wait on other processes finish sooner two at a time.
    """

    requires: tuple[str, ...] = ()
    test_requires: tuple[str, ...] = ()
    typecheck_requires: tuple[str, ...] = ()
    workers: int = 1


# The dependency DAG of DESIGN.md, leaves first. The lint session checks that
# it agrees with the packages' pyproject.toml files.
PACKAGES: dict[str, Package] = {
    # manymap.launcher.testing (the conformance suite) imports pytest.
    # numpy: reseed's test forks children that draw from numpy's global generator.
    "manymap-launcher": Package(test_requires=("tqdm", "numpy"), typecheck_requires=("pytest>=8",)),
    "manymap-serialize": Package(
        requires=("manymap-launcher",),
        test_requires=("numpy",),
    ),
    "manymap-portpicker": Package(requires=("manymap-launcher",)),
    "manymap-secure": Package(
        requires=("manymap-launcher", "manymap-portpicker"),
        test_requires=(TESTHOSTS,),
        typecheck_requires=("types-paramiko",),
    ),
    "manymap-pools-local": Package(
        requires=("manymap-launcher", "manymap-serialize"),
        test_requires=("numpy", "schwimmbad"),  # schwimmbad: its own pools run the schwimmbad test program
        typecheck_requires=("numpy",),  # the random helpers seed numpy when it is there
        workers=2,
    ),
    "manymap-pools-rpc": Package(
        requires=(
            "manymap-launcher",
            "manymap-serialize",
            "manymap-portpicker",
            "manymap-secure",
        ),
        test_requires=("numpy", TESTHOSTS),
        typecheck_requires=("types-paramiko",),
        workers=2,
    ),
    "manymap-pools-dask": Package(
        requires=("manymap-launcher", "manymap-serialize"),
        # schwimmbad: the conformance suite runs the schwimmbad program; asyncssh and
        # cryptography: SSHCluster over the test hosts, with TLS credentials made for the test;
        # dask-jobqueue: its job queue cluster that runs the jobs here.
        test_requires=("numpy", "schwimmbad", "asyncssh", "cryptography", "dask-jobqueue>=0.9", TESTHOSTS),
        workers=2,
    ),
    "manymap": Package(
        requires=(
            "manymap-launcher",
            "manymap-serialize",
            "manymap-portpicker",
            "manymap-secure",
            "manymap-pools-local",
            "manymap-pools-rpc",
        ),
        test_requires=("numpy", TESTHOSTS),  # the sshd fixture for manymap.core's tests
        typecheck_requires=("types-paramiko", "tomli"),  # tomli: manymap.hosts on Python 3.10
    ),
}

PYTEST = ("pytest>=8", "pytest-xdist>=3")
MYPY = ("mypy>=1.13",)
# ruff lets mkdocstrings format the separate signatures.
DOCS = ("mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.27", "ruff>=0.8")
BENCH = ("numpy", "dill", "loky", "pathos", "matplotlib")


def closure(name: str) -> list[str]:
    """``name`` and every in-repo distribution it depends on, leaves first."""
    seen: list[str] = []

    def visit(pkg: str) -> None:
        for dep in PACKAGES[pkg].requires:
            visit(dep)
        if pkg not in seen:
            seen.append(pkg)

    visit(name)
    return seen


def import_path(name: str) -> str:
    """The import path of a distribution: ``manymap-pools-local`` -> ``manymap.pools.local``."""
    return name.replace("-", ".")


def src_dir(name: str) -> Path:
    """The directory holding the distribution's code inside its ``src/``."""
    return PACKAGES_DIR / name / "src" / Path(*import_path(name).split("."))


def install_local(session: nox.Session, names: list[str], *extra: str) -> None:
    """Install in-repo distributions (non-editable) plus ``extra`` in one command.

    With uv, ``--no-sources`` keeps the workspace's ``tool.uv.sources`` from
    turning siblings into editable installs, and ``--reinstall-package``
    rebuilds each local distribution, since uv would otherwise reuse a cached
    wheel whose pyproject.toml did not change even when its code did.
    """
    paths = [f"./packages/{name}" for name in names]
    args: list[str] = []
    if session.venv_backend == "uv":
        args.append("--no-sources")
        for name in [*names, *([TESTHOSTS_DIST] if TESTHOSTS in extra else [])]:
            args += ["--reinstall-package", name]
    session.install(*args, *paths, *extra)


PARAMS = [nox.param(name, id=name, tags=[name]) for name in PACKAGES]


def ensure_cpython_tests(session: nox.Session) -> None:
    """Make CPython's own ``test_concurrent_futures`` importable for the running Python.

    manymap-pools-local runs it on its executors (tests/test_cpython_executor.py)
    and fails, never skips, without it. Builds that leave the ``test`` package out
    (Debian's, pyenv's here) get Debian's ``libpython3.X-testsuite`` when we are
    root with apt-get, as the ssh fixtures install openssh-server; anywhere else
    the tests' own error says what to install.
    """
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"  # the sessions' Python is nox's own
    stdlib_tests = Path(f"/usr/lib/python{version}/test")
    if (stdlib_tests / "test_concurrent_futures.py").exists() or (
        stdlib_tests / "test_concurrent_futures"
    ).is_dir():
        return
    try:
        if importlib.util.find_spec("test.test_concurrent_futures") is not None:
            return
    except ImportError:
        pass
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", f"libpython{version}-testsuite", external=True, env=env)


def xdist(workers: int) -> tuple[str, ...]:
    """pytest's options for ``workers`` processes (none for one)."""
    return ("-n", str(workers), "--dist", "loadscope") if workers > 1 else ()


@nox.session(python=None)
@nox.parametrize("package", PARAMS)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's own tests against its installed distribution."""
    spec = PACKAGES[package]
    install_local(session, closure(package), *PYTEST, *spec.test_requires)
    if package == "manymap-pools-local":
        ensure_cpython_tests(session)
    # pytest exits 5 when it collects no test; session.run fails on it like on
    # any non-zero code, so a package without real tests fails here.
    session.run("pytest", f"packages/{package}/tests", *xdist(spec.workers), *session.posargs)


# The real third-party clients of integration-tests/clients/: libraries that take a pool
# or a map function, pinned to versions that work together (and with numpy 2).
# pathos is there to run its own example scripts as the reference output.
PATHOS_VERSION = "0.3.5"
CLIENTS = (
    "numpy>=1.26",
    "scipy>=1.15",  # differential_evolution(rng=)
    "emcee==3.1.6",
    "dynesty==3.1.0",
    "schwimmbad==0.4.2",
    "mystic==0.4.5",
    "zeus-mcmc==2.5.4",
    f"pathos=={PATHOS_VERSION}",
)
PATHOS_SDIST_DIR = ROOT / "build" / "pathos-sdist"


def pathos_examples(session: nox.Session) -> Path:
    """pathos' own example scripts, from its sdist on PyPI (never copied into this repo).

    Returns the unpacked ``pathos-<version>/`` directory, which holds ``examples/`` and
    ``examples2/``; the sdist is downloaded once into build/pathos-sdist/.
    """
    unpacked = PATHOS_SDIST_DIR / f"pathos-{PATHOS_VERSION}"
    if (unpacked / "examples").is_dir():
        return unpacked
    PATHOS_SDIST_DIR.mkdir(parents=True, exist_ok=True)
    session.install("pip")
    session.run(
        "python",
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--dest",
        str(PATHOS_SDIST_DIR),
        f"pathos=={PATHOS_VERSION}",
    )
    sdist = PATHOS_SDIST_DIR / f"pathos-{PATHOS_VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        archive.extractall(PATHOS_SDIST_DIR, filter="data")
    if not (unpacked / "examples").is_dir():
        session.error(f"{sdist.name} has no examples/ directory")
    return unpacked


@nox.session(python=None)
def integration(session: nox.Session) -> None:
    """Run the cross-package tests with every distribution installed together, the real
    clients (integration-tests/clients/), and the test fixtures' own tests (tools/testhosts)."""
    # pathos (in CLIENTS) also runs the migration guide's "before" blocks (integration-tests/test_docs.py).
    # manymap-pools-dask (the optional extra manymap[dask]): its docs' examples run here too
    # (dask-jobqueue: the SLURM / PBS ones).
    install_local(
        session,
        [*closure("manymap"), "manymap-pools-dask"],
        *PYTEST,
        *CLIENTS,
        "dask-jobqueue>=0.9",
        TESTHOSTS,
    )
    env = {
        # A missing client library or pathos example is a failure here, not a skip.
        "MANYMAP_REQUIRE_CLIENTS": "1",
        "MANYMAP_PATHOS_SDIST": str(pathos_examples(session)),
    }
    session.run("pytest", "integration-tests", "tools/testhosts/tests", *xdist(2), *session.posargs, env=env)


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the repo; the DAG above against the pyprojects."""
    check_dependency_table(session)
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


def check_dependency_table(session: nox.Session) -> None:
    """Fail if ``PACKAGES`` and the packages' pyproject.toml disagree on in-repo dependencies."""
    on_disk = sorted(p.name for p in PACKAGES_DIR.iterdir() if (p / "pyproject.toml").is_file())
    if on_disk != sorted(PACKAGES):
        session.error(f"noxfile PACKAGES {sorted(PACKAGES)} != packages on disk {on_disk}")
    for name, spec in PACKAGES.items():
        project = nox.project.load_toml(PACKAGES_DIR / name / "pyproject.toml")["project"]
        if project["name"] != name:
            session.error(f"packages/{name}/pyproject.toml names the distribution {project['name']!r}")
        declared = set()
        for requirement in project.get("dependencies", []):
            dist = requirement.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                dist = dist.split(sep)[0]
            if dist in PACKAGES:
                declared.add(dist)
                if "==" in requirement:
                    session.error(f"{name}: sibling dependency {requirement!r} is an == pin (use a range)")
        if declared != set(spec.requires):
            session.error(
                f"{name}: pyproject.toml depends on {sorted(declared)}, "
                f"the noxfile table on {sorted(spec.requires)}"
            )
    session.log(f"dependency table agrees with {len(PACKAGES)} pyproject.toml files")


@nox.session(python=None)
@nox.parametrize("package", PARAMS)
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict on one package's source, its in-repo dependencies installed.

    The package's own source is checked from ``src/`` (MYPYPATH points there,
    so ``src/manymap/launcher/x.py`` is ``manymap.launcher.x``); its siblings
    are found, typed, in the environment's site-packages. For the meta
    package, whose modules sit directly in the ``manymap`` namespace, only the
    files of ``src/manymap/`` itself are passed.
    """
    spec = PACKAGES[package]
    install_local(session, closure(package), *MYPY, *spec.typecheck_requires)
    src = PACKAGES_DIR / package / "src"
    code = src_dir(package)
    if package == "manymap":
        # Everything in the meta package's src/manymap/ is its own: the
        # siblings live in their own src/ trees.
        targets = sorted(
            str(p.relative_to(ROOT))
            for p in code.iterdir()
            if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")
        )
    else:
        targets = [str(code.relative_to(ROOT))]
    if not targets:
        session.error(f"no Python source to check in {code}")
    session.run(
        "mypy",
        "--strict",
        *targets,
        *session.posargs,
        env={"MYPYPATH": str(src)},
    )


@nox.session(python=None)
def build(session: nox.Session) -> None:
    """Build sdist and wheel of every package into build/dist and check them."""
    session.install("twine>=6", *(() if session.venv_backend == "uv" else ("build",)))
    if DIST_DIR.exists():
        shutil.rmtree(DIST_DIR)
    DIST_DIR.mkdir(parents=True)
    for name in PACKAGES:
        # Both tools build the wheel from the sdist, so a file missing from
        # the sdist shows up as a broken wheel.
        if session.venv_backend == "uv":
            session.run(
                "uv",
                "build",
                "--quiet",
                "--no-sources",
                "--out-dir",
                str(DIST_DIR),
                f"packages/{name}",
                external=True,
            )
        else:
            session.run("python", "-m", "build", "--outdir", str(DIST_DIR), f"packages/{name}")
    dists = sorted(
        str(p.relative_to(ROOT)) for pattern in ("*.whl", "*.tar.gz") for p in DIST_DIR.glob(pattern)
    )
    session.run("twine", "check", "--strict", *dists)
    session.run("python", "tools/check_dists.py", "--expect", str(len(PACKAGES)), str(DIST_DIR))


@nox.session(python=None)
def docs(session: nox.Session) -> None:
    """Build the mkdocs site in strict mode (warnings are errors) into site/."""
    session.install(*DOCS)
    # mkdocstrings reads the sources from packages/*/src (see mkdocs.yml):
    # nothing of the family needs installing. The env var silences
    # mkdocs-material's banner about its future, which is not a doc problem.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python=None, default=False)
def bench(session: nox.Session) -> None:
    """Run every tools/bench/bench_*.py; each prints a table and writes JSON under build/bench/.

    ``nox -s bench -- pools --quick`` runs only ``bench_pools.py`` (names
    comma-separated, without ``bench_``) and passes it the other arguments;
    arguments without a leading name go to every script.
    """
    scripts = sorted((ROOT / "tools" / "bench").glob("bench_*.py"))
    if not scripts:
        session.skip("no tools/bench/bench_*.py script yet")
    args = list(session.posargs)
    if args and not args[0].startswith("-"):
        by_name = {script.stem.removeprefix("bench_"): script for script in scripts}
        wanted = [name.strip() for name in args.pop(0).split(",") if name.strip()]
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            session.error(f"no benchmark {', '.join(unknown)}; there are: {', '.join(by_name)}")
        scripts = [by_name[name] for name in wanted]
    # TESTHOSTS: the ssh rows' private sshd; manymap-pools-dask: the DaskPool rows.
    install_local(session, [*closure("manymap"), "manymap-pools-dask"], *BENCH, TESTHOSTS)
    # Byte-compile what was installed, as pip does: uv does not, and where
    # PYTHONDONTWRITEBYTECODE is set no import caches its .pyc either, so every
    # cold cell would compile the family (and dill, ppft, ...) from source while
    # the stdlib's modules come precompiled.
    session.run(
        "python",
        "-c",
        "import compileall, sysconfig; "
        "compileall.compile_dir(sysconfig.get_path('purelib'), quiet=1, workers=0)",
        silent=True,
    )
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    env = {"MANYMAP_BENCH_DIR": str(BENCH_DIR), "PYTHONHASHSEED": "0"}
    for script in scripts:
        session.log(f"benchmark {script.name}")
        session.run("python", str(script.relative_to(ROOT)), *args, env=env)


if __name__ == "__main__":  # pragma: no cover - `python noxfile.py` works like `nox`
    sys.exit(nox.main())
