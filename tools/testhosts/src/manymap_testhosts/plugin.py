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
- ``no_leaks`` (function): fails the test if it leaves threads or sockets behind.

When the machine cannot run them the fixtures skip with the reason, or fail
when ``MANYMAP_REQUIRE_SSHD=1`` (CI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ._common import REQUIRE_ENV, Unavailable
from ._helpers import socket_fds
from ._netns import HostNetwork
from ._require import NO_HOSTS, required, unavailable
from ._sshd import Keyring, SSHServer

__all__ = ["no_leaks", "sshd", "testhosts", "testhosts_factory", "testhosts_keyring"]

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


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads or sockets open (after a settle time of at most 10 s)."""
    threads_before = set(threading.enumerate())
    sockets_before = socket_fds()
    yield
    deadline = time.monotonic() + 10
    while True:
        threads = [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        sockets = sorted(socket_fds() - sockets_before)
        if not threads and not sockets:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the test leaked threads {threads} and sockets {sockets}")
        time.sleep(0.02)  # threads and sockets wind down on their own threads: poll, bounded


def pytest_report_header(config: pytest.Config) -> str:
    """Say in pytest's header what happens where the machine cannot run the test hosts.

    Nothing has run yet: the header says the rule, never that anything was
    skipped; the terminal summary counts what really was.
    """
    if required():
        return f"manymap-testhosts: sshd and namespace hosts required ({REQUIRE_ENV}=1)"
    return f"manymap-testhosts: sshd and namespace hosts optional (set {REQUIRE_ENV}=1 to require them)"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Count, loudly, the tests skipped because this machine cannot run the test hosts."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and NO_HOSTS in str(report.longrepr[2])
    ]
    if skipped:
        reason = str(skipped[0].longrepr[2]).split(NO_HOSTS, 1)[1]
        terminalreporter.write_line(
            f"manymap-testhosts: {len(skipped)} test{'s' if len(skipped) > 1 else ''} SKIPPED, "
            f"no test hosts on this machine{reason}",
            yellow=True,
            bold=True,
        )
