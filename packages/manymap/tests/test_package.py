"""The installed manymap distribution: its version and its place in the ``manymap`` namespace.

These tests run against the installed distribution (``nox -s "tests(manymap)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

DIST = "manymap"
MODULE = "manymap"
# Namespace packages the distribution shares with its siblings: never shipped with an __init__.py.
NAMESPACES = ("manymap",)


def test_version_matches_about() -> None:
    about = importlib.import_module(f"{MODULE}.__about__")
    assert importlib.metadata.version(DIST) == about.__version__


def test_imported_from_the_installed_distribution() -> None:
    about = importlib.import_module(f"{MODULE}.__about__")
    dist = importlib.metadata.distribution(DIST)
    shipped = {Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()}
    assert Path(about.__file__).resolve() in shipped, (
        f"{about.__file__} is not a file of the installed {DIST} distribution"
    )


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_namespace_is_pep420(namespace: str) -> None:
    package = importlib.import_module(namespace)
    assert package.__spec__ is not None
    assert package.__spec__.origin is None, f"{namespace} is a regular package: {package.__spec__.origin}"
    assert getattr(package, "__file__", None) is None
    paths = list(package.__path__)
    assert paths, f"{namespace} has an empty __path__"
    for path in paths:
        assert not (Path(path) / "__init__.py").exists(), (
            f"{path}/__init__.py makes {namespace} a regular package"
        )


def test_distribution_ships_no_namespace_init() -> None:
    files = {str(f) for f in importlib.metadata.files(DIST) or ()}
    assert files, f"{DIST} lists no installed files"
    for namespace in NAMESPACES:
        init = namespace.replace(".", "/") + "/__init__.py"
        assert init not in files, f"{DIST} ships {init}"


def test_ships_py_typed() -> None:
    files = {str(f) for f in importlib.metadata.files(DIST) or ()}
    assert MODULE.replace(".", "/") + "/py.typed" in files


SIBLINGS = (
    "manymap-launcher",
    "manymap-serialize",
    "manymap-portpicker",
    "manymap-secure",
    "manymap-pools-local",
    "manymap-pools-rpc",
)


def _split(requirement: str) -> tuple[str, str]:
    """``"a-b<0.2,>=0.1; extra == 'x'"`` -> ``("a-b", "<0.2,>=0.1")``."""
    spec = requirement.split(";")[0].replace(" ", "")
    cut = next((i for i, c in enumerate(spec) if c in "<>=!~[("), len(spec))
    return spec[:cut], spec[cut:]


@pytest.mark.parametrize("sibling", SIBLINGS)
def test_depends_on_every_sibling_by_range(sibling: str) -> None:
    requirements = dict(_split(r) for r in importlib.metadata.requires(DIST) or [])
    assert sibling in requirements, f"{DIST} does not depend on {sibling}: {sorted(requirements)}"
    specifier = requirements[sibling]
    assert ">=" in specifier, f"{sibling}{specifier} has no lower bound"
    assert "==" not in specifier, f"{sibling}{specifier} is an == pin"
    # The dependency is installed alongside the meta package.
    assert importlib.metadata.version(sibling)
