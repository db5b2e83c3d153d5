"""Make ``pool_helpers`` importable by name, so spawned workers can import it too."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
