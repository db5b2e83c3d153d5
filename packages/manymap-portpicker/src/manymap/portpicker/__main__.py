"""``python -m manymap.portpicker``: the ``manymap-portpicker`` command."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m manymap.portpicker"))
