"""The installed manymap meta distribution: the family's packaging rules, and its siblings.

These tests run against the installed distribution (``nox -s "tests(manymap)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from manymap.launcher.testing import DistributionConformance

DIST = "manymap"


class TestDistribution(DistributionConformance):
    distribution = DIST
    module = "manymap"
    public_modules = ("manymap.core", "manymap.maps", "manymap.hosts", "manymap.profile")
    scripts = ("manymap",)


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
