"""The pool conformance suite, and the reference pool that proves it."""

from __future__ import annotations

from manymap.launcher.testing._reference import ReferencePool

__all__ = ["ReferencePool"]
