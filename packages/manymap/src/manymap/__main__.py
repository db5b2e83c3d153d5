"""``python -m manymap``: the ``manymap`` command."""

from __future__ import annotations

import sys

from manymap._cli import main

if __name__ == "__main__":
    sys.exit(main())
