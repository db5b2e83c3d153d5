"""Public names show their public path, and may load when first named.

A class or function defined in a private module (``manymap.launcher._errors``)
and re-exported by its package would show the private path in tracebacks,
reprs and pickles. :func:`show_public_paths` renames the module of every
name a package lists in ``__all__`` to the package itself; every package of
the family calls it at the end of its ``__init__``.

A package whose public name needs a heavy module that a plain ``map`` does
not (``ProcessPool``'s process machinery for a ThreadPool script, ``check``'s
search, the RPC server) loads it when the name is first asked for:
:func:`load_on_access` makes the package's ``__getattr__`` and ``__dir__``.

Packages import their modules with the cyclic garbage collector held off
(:class:`collector_paused`): importing the family makes tens of thousands of
objects (functions, classes, their dicts) that all live on, so the
collections they set off free nothing, and they were 7 of the 61 ms of
``from manymap.pools.local import ProcessPool`` (``typing`` and
``concurrent.futures`` included, which the family imports first).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["collector_paused", "load_on_access", "show_public_paths"]


class collector_paused:
    """Hold off the cyclic garbage collector for a block (a package's imports), and
    turn it back on after it if it was on before."""

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._was_on:
            gc.enable()


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


def load_on_access(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for public names loaded on first access.

    ``where`` maps each such name to the private module that defines it. The
    first access to one imports that module and takes every name ``where``
    maps to it: each shows the package as its ``__module__`` (as
    :func:`show_public_paths` does) and is kept in ``namespace``, so later
    lookups are plain. ``__dir__`` lists them before they are loaded (tab
    completion, ``help()``). Use::

        __getattr__, __dir__ = load_on_access(globals(), {"Name": "package._module"})
    """
    package = namespace["__name__"]

    def load(name: str) -> Any:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with collector_paused():
            __import__(module_name)  # (not importlib, which the family defers)
        module = sys.modules[module_name]
        loaded = {other: getattr(module, other) for other, home in where.items() if home == module_name}
        private = module_name.rpartition(".")[0] + "._"
        show_public_paths({"__name__": package, "__all__": list(loaded), **loaded}, private=private)
        namespace.update(loaded)
        return loaded[name]

    def listing() -> list[str]:
        return sorted({*namespace, *namespace["__all__"]})

    return load, listing
