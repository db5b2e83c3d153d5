"""Public names show their public path.

A class or function defined in a private module (``manymap.launcher._errors``)
and re-exported by its package would show the private path in tracebacks,
reprs and pickles. :func:`show_public_paths` renames the module of every
name a package lists in ``__all__`` to the package itself; every package of
the family calls it at the end of its ``__init__``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["show_public_paths"]


def show_public_paths(namespace: dict[str, Any], private: str | None = None) -> None:
    """Make every class and function of ``namespace['__all__']`` defined in a
    private submodule of the package name the package as its ``__module__``.

    Args:
        namespace: the package's (or public module's) ``globals()``.
        private: the prefix of the private modules whose names it shows;
            by default the package's own (``"<package>._"``). A public
            module beside them, such as ``manymap.launcher.lowlevel``,
            passes its package's.
    """
    package = namespace["__name__"]
    prefix = f"{package}._" if private is None else private
    for name in namespace["__all__"]:
        obj = namespace.get(name)
        own = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__"))
        if own and obj.__module__.startswith(prefix):
            obj.__module__ = package
