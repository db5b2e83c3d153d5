"""The pytest plugin of manymap-testhosts: the ``sshd`` and ``testhosts`` fixtures.

Installed, the distribution registers this module through the ``pytest11``
entry point, so every test session sees the fixtures without a conftest.

- ``testhosts_keyring`` (session): the client keys shared by every test sshd.
- ``sshd`` (session): a private sshd on 127.0.0.1, an :class:`~manymap_testhosts.SSHServer`.
- ``testhosts`` (module): a :class:`~manymap_testhosts.HostNetwork` of
  network namespace hosts; the module sets how many with ``TESTHOSTS = N``
  (default 2).
- ``testhosts_factory`` (session): ``testhosts_factory(n)`` builds more networks,
  torn down at the end of the session.

When the machine cannot run them the fixtures skip with the reason, or fail
when ``MANYMAP_REQUIRE_SSHD=1`` (CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ._common import Unavailable
from ._netns import HostNetwork
from ._require import required, unavailable
from ._sshd import Keyring, SSHServer

__all__ = ["sshd", "testhosts", "testhosts_factory", "testhosts_keyring"]

DEFAULT_HOSTS = 2


@pytest.fixture(scope="session")
def testhosts_keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    """The client key every test sshd accepts, a wrong key, and the authorized_keys file."""
    try:
        return Keyring(tmp_path_factory.mktemp("testhosts-keys"))
    except Unavailable as error:
        unavailable(str(error))


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory, testhosts_keyring: Keyring) -> Iterator[SSHServer]:
    """A private OpenSSH sshd on 127.0.0.1 for the whole test session."""
    server = SSHServer(tmp_path_factory.mktemp("sshd"), testhosts_keyring)
    try:
        server.start()
    except Unavailable as error:
        server.stop()
        unavailable(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def testhosts_factory(
    tmp_path_factory: pytest.TempPathFactory, testhosts_keyring: Keyring
) -> Iterator[Callable[[int], HostNetwork]]:
    """Build networks of ``n`` namespace hosts on demand; all torn down at the end of the session."""
    networks: list[HostNetwork] = []

    def make(count: int = DEFAULT_HOSTS) -> HostNetwork:
        network = HostNetwork(tmp_path_factory.mktemp("testhosts"), testhosts_keyring, count)
        try:
            network.start()
        except Unavailable as error:
            unavailable(str(error))
        networks.append(network)
        return network

    try:
        yield make
    finally:
        for network in networks:
            network.stop()


@pytest.fixture(scope="module")
def testhosts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, testhosts_keyring: Keyring
) -> Iterator[HostNetwork]:
    """``TESTHOSTS`` (a module global, default 2) namespace hosts, each with its sshd, for one test module."""
    count = int(getattr(request.module, "TESTHOSTS", DEFAULT_HOSTS))
    network = HostNetwork(tmp_path_factory.mktemp("testhosts"), testhosts_keyring, count)
    try:
        network.start()
    except Unavailable as error:
        unavailable(str(error))
    try:
        yield network
    finally:
        network.stop()


def pytest_report_header(config: pytest.Config) -> str:
    """Say in pytest's header whether missing test hosts skip or fail."""
    mode = "required: fail, never skip" if required() else "skipped where the machine cannot run them"
    return f"manymap-testhosts: sshd and namespace hosts {mode}"
