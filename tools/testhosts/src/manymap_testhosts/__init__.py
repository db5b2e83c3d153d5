"""Real test hosts for the manymap family: a private sshd on 127.0.0.1 and network namespace hosts.

Private to the monorepo, never published. nox installs it into the test
sessions that need ssh; its pytest plugin (:mod:`manymap_testhosts.plugin`)
provides the ``sshd``, ``testhosts``, ``testhosts_factory``,
``testhosts_keyring`` and ``no_leaks`` fixtures. The classes work outside pytest too, and
``python -m manymap_testhosts`` starts them by hand.
"""

from __future__ import annotations

from ._common import REQUIRE_ENV, Unavailable
from ._helpers import ECHO_SERVER, exchange, process_gone, socket_fds, wait_until
from ._netns import HostNetwork, NamespaceHost
from ._require import required, unavailable
from ._sshd import Keyring, SSHServer, write_ssh_config

__all__ = [
    "ECHO_SERVER",
    "REQUIRE_ENV",
    "HostNetwork",
    "Keyring",
    "NamespaceHost",
    "SSHServer",
    "Unavailable",
    "exchange",
    "process_gone",
    "required",
    "socket_fds",
    "unavailable",
    "wait_until",
    "write_ssh_config",
]
