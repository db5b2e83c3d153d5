"""Check the built distributions of the manymap family.

Usage: ``python tools/check_dists.py [--expect N] DIST_DIR``

For every wheel in DIST_DIR it checks that:

- it ships neither ``manymap/__init__.py`` nor ``manymap/pools/__init__.py``
  (both are PEP 420 namespace packages shared by every distribution);
- each code package it ships has a ``py.typed``. A code package is the first
  directory below the namespaces that holds ``.py`` files (``manymap/launcher``,
  ``manymap/pools/local``), or ``manymap/`` itself for the meta package, which
  puts its modules directly in the namespace;
- it ships the LICENSE in its ``.dist-info``;

and for every sdist that it has a wheel of the same name and version, ships
``LICENSE`` and ``PKG-INFO``, and no namespace ``__init__.py`` either. With
``--expect N`` it also fails unless there are exactly N wheels and N sdists.

It prints what it checked and exits non-zero on the first run with any
failure, listing all of them.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

NAMESPACES = ("manymap", "manymap/pools")
FORBIDDEN = tuple(f"{ns}/__init__.py" for ns in NAMESPACES)


def code_packages(names: Iterable[str]) -> list[str]:
    """The code package directories among a wheel's file names (posix paths)."""
    dirs_with_py = {str(PurePosixPath(n).parent) for n in names if n.endswith(".py")}
    found: set[str] = set()
    for d in dirs_with_py:
        parts = PurePosixPath(d).parts
        if not parts or parts[0] != "manymap":
            continue
        # Walk down from the top; the first non-namespace directory is the package.
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix not in NAMESPACES:
                found.add(prefix)
                break
        else:
            found.add(d)  # .py files directly in a namespace dir: the meta package's manymap/
    return sorted(found)


def check_wheel(path: str) -> tuple[list[str], list[str]]:
    """Return (what was checked, what failed) for one wheel."""
    checked: list[str] = []
    errors: list[str] = []
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    for forbidden in FORBIDDEN:
        if forbidden in names:
            errors.append(f"{path}: ships {forbidden} (a PEP 420 namespace must have no __init__.py)")
    checked.append("no namespace __init__.py")
    packages = code_packages(names)
    if not packages:
        errors.append(f"{path}: ships no Python code under manymap/")
    for pkg in packages:
        if f"{pkg}/py.typed" not in names:
            errors.append(f"{path}: code package {pkg}/ has no py.typed")
    checked.append(f"py.typed in {', '.join(p + '/' for p in packages) or '(none)'}")
    licenses = [
        n
        for n in names
        if ".dist-info/" in n and PurePosixPath(n).name.startswith(("LICENSE", "LICENCE", "COPYING"))
    ]
    if not licenses:
        errors.append(f"{path}: no LICENSE in its .dist-info")
    checked.append(f"license {', '.join(licenses) or '(missing)'}")
    return checked, errors


def check_sdist(path: str) -> tuple[list[str], list[str]]:
    """Return (what was checked, what failed) for one sdist."""
    errors: list[str] = []
    with tarfile.open(path) as tf:
        names = tf.getnames()
    # Every member sits below one top directory, ``name-version/``.
    inner = {
        str(PurePosixPath(*PurePosixPath(n).parts[1:])) for n in names if len(PurePosixPath(n).parts) > 1
    }
    for required in ("LICENSE", "PKG-INFO", "pyproject.toml", "README.md"):
        if required not in inner:
            errors.append(f"{path}: no {required}")
    for forbidden in FORBIDDEN:
        if f"src/{forbidden}" in inner:
            errors.append(f"{path}: ships src/{forbidden}")
    return ["LICENSE, PKG-INFO, pyproject.toml, README.md", "no namespace __init__.py"], errors


def dist_key(filename: str) -> str:
    """The name-version key of a wheel or sdist: ``manymap_x-0.1.0.tar.gz`` -> ``manymap_x-0.1.0``."""
    stem = filename.removesuffix(".tar.gz").removesuffix(".whl")
    name, version = stem.split("-")[:2]
    return f"{name.replace('.', '_').replace('-', '_').lower()}-{version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dist_dir", help="directory holding the built wheels and sdists")
    parser.add_argument("--expect", type=int, help="exact number of distributions expected")
    args = parser.parse_args(argv)

    root = Path(args.dist_dir)
    wheels = sorted(str(p) for p in root.glob("*.whl"))
    sdists = sorted(str(p) for p in root.glob("*.tar.gz"))
    errors: list[str] = []
    if not wheels:
        errors.append(f"{root}: no wheel")
    if args.expect is not None:
        if len(wheels) != args.expect:
            errors.append(f"{root}: {len(wheels)} wheels, expected {args.expect}")
        if len(sdists) != args.expect:
            errors.append(f"{root}: {len(sdists)} sdists, expected {args.expect}")

    for wheel in wheels:
        checked, errs = check_wheel(wheel)
        errors += errs
        print(f"{'FAIL' if errs else 'ok  '} {Path(wheel).name}: {'; '.join(checked)}")
    wheel_keys = {dist_key(Path(w).name) for w in wheels}
    for sdist in sdists:
        checked, errs = check_sdist(sdist)
        if dist_key(Path(sdist).name) not in wheel_keys:
            errs.append(f"{sdist}: no wheel of the same name and version")
        errors += errs
        print(f"{'FAIL' if errs else 'ok  '} {Path(sdist).name}: {'; '.join(checked)}")

    if errors:
        print(f"\n{len(errors)} problem(s):", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"\nchecked {len(wheels)} wheels and {len(sdists)} sdists in {root}: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
