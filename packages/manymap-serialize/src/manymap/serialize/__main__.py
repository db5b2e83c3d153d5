"""``python -m manymap.serialize``: the same as the ``manymap-serialize`` command."""

from __future__ import annotations

import sys

from manymap.serialize._cli import main

if __name__ == "__main__":
    sys.exit(main())
