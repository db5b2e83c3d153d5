"""``python -m manymap.secure``: the ``manymap-connect`` command."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m manymap.secure"))
