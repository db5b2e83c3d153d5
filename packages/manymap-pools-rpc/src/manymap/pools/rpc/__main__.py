"""``python -m manymap.pools.rpc``: the ``manymap-server`` command."""

from __future__ import annotations

import sys

from manymap.pools.rpc._cli import main

if __name__ == "__main__":
    sys.exit(main())
