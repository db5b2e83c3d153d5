"""Logging in: the ssh handshake and authentication of one connection, each failure named.

:func:`login` runs paramiko's handshake on a client whose known hosts are
loaded (``_hostkeys``) and turns every way it can fail into the family's
errors, with host and port: :class:`~manymap.launcher.HostKeyError` (unknown
or changed key), :class:`~manymap.launcher.AuthenticationError` (no key, or
the login refused, saying which keys were offered) and
:class:`~manymap.secure.ConnectError` (nothing answers, no ssh there, or no
answer in time).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import paramiko

from manymap.launcher import AuthenticationError, HostKeyError

from ._errors import ConnectError
from ._hostkeys import changed_key_error
from ._hosts import HostProfile
from ._sshtransport import make_transport

__all__ = ["identity_files", "login"]


def _failure(error: BaseException, elapsed: float, timeout: float) -> str:
    """Words for a failed ssh handshake; one that ran into the time limit says so."""
    detail = str(error) or type(error).__name__
    if elapsed >= timeout * 0.9:
        return f"no ssh answer within {timeout:g} s ({detail})"
    return f"ssh connection failed: {detail}"


def identity_files(profile: HostProfile) -> list[str]:
    """The profile's identity files that exist.

    Raises:
        AuthenticationError: the profile allows only its identity files and none exists.
    """
    identities = [str(Path(p).expanduser()) for p in profile.identity_files]
    present = [p for p in identities if os.path.isfile(p)]
    if identities and not present and profile.identities_only:
        raise AuthenticationError(
            f"none of the identity files exist: {', '.join(identities)}",
            host=profile.hostname,
            port=profile.port,
        )
    return present


def login(
    client: paramiko.SSHClient, profile: HostProfile, present: list[str], sock: paramiko.Channel | None
) -> None:
    """Connect ``client`` to the profile's host (over ``sock`` when a jump host gave one) and log in."""
    timeout = profile.connect_timeout
    started = time.monotonic()
    try:
        client.connect(
            profile.hostname,
            port=profile.port,
            username=profile.user,
            key_filename=present or None,  # type: ignore[arg-type]  # paramiko takes a list too
            allow_agent=profile.use_agent and not profile.identities_only,
            look_for_keys=not present and not profile.identities_only,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            sock=sock,
            transport_factory=make_transport,
        )
    except (HostKeyError, AuthenticationError):
        raise
    except paramiko.BadHostKeyException as error:
        raise changed_key_error(error, profile) from None
    except paramiko.AuthenticationException as error:
        offered = ", ".join(present) if present else "default keys" if not profile.identities_only else "none"
        agent = " and the ssh agent" if profile.use_agent and not profile.identities_only else ""
        raise AuthenticationError(
            f"login as {profile.user!r} refused ({error}); offered identity files: {offered}{agent}",
            host=profile.hostname,
            port=profile.port,
        ) from None
    except TimeoutError as error:
        raise ConnectError(
            f"no ssh answer within {timeout:g} s ({error or 'timed out'})",
            host=profile.hostname,
            port=profile.port,
        ) from None
    except paramiko.ssh_exception.NoValidConnectionsError as error:
        reasons = "; ".join(str(e) for e in error.errors.values()) or str(error)
        raise ConnectError(
            f"cannot connect ({reasons}): is sshd running and the port right?",
            host=profile.hostname,
            port=profile.port,
        ) from None
    except paramiko.SSHException as error:
        if "authentication methods" not in str(error):
            raise ConnectError(
                _failure(error, time.monotonic() - started, timeout),
                host=profile.hostname,
                port=profile.port,
            ) from None
        raise AuthenticationError(
            f"no key to log in as {profile.user!r} with: no identity file"
            + (", no agent key and no default key in ~/.ssh" if not profile.identities_only else ""),
            host=profile.hostname,
            port=profile.port,
        ) from None
    except (EOFError, OSError) as error:
        raise ConnectError(
            _failure(error, time.monotonic() - started, timeout), host=profile.hostname, port=profile.port
        ) from None
