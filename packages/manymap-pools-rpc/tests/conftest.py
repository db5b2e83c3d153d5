"""Fixtures of manymap-pools-rpc's tests.

The ssh servers are real: ``sshd`` (one per session, on 127.0.0.1) and
``testhosts`` (network namespace hosts, per module) come from the monorepo's
private ``testhosts-manymap`` pytest plugin (tools/testhosts), which nox
installs into this package's test session. ``manymap-server`` runs on them
as ``sys.executable -m manymap.pools.rpc``: the hosts share this filesystem.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ``rpc_helpers`` importable by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))
