"""What the sshd and the namespace hosts share: tool lookup and install, keys, sshd config, process cleanup.

Nothing here touches ``/etc/ssh``: every file an sshd of ours reads or writes
lives under a directory the caller owns. The only system changes are the ones
a fresh CI machine needs: ``apt-get install`` of ``openssh-server`` or
``iproute2`` when a tool is missing and we are root, and ``/run/sshd`` (the
privilege separation directory sshd insists on).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "NUMERIC_PREFIXES",
    "REQUIRE_ENV",
    "Unavailable",
    "descendants",
    "ensure_tool",
    "generate_key",
    "kill_pids",
    "known_hosts_line",
    "numeric_settings",
    "pids_with_environ",
    "pids_with_socket",
    "sshd_config_text",
    "write_private",
]

#: Set to ``1`` (``.ci/run`` does) to make the fixtures fail instead of skipping.
REQUIRE_ENV = "MANYMAP_REQUIRE_SSHD"

# Where Debian puts the tools when PATH (a non-login root shell, a venv) lacks sbin.
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Which Debian package brings which tool.
_PACKAGE_OF = {"sshd": "openssh-server", "ssh-keygen": "openssh-client", "ip": "iproute2"}
_APT_TIMEOUT = 600.0


class Unavailable(RuntimeError):
    """This machine cannot run the requested test hosts; the text says why."""


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def ensure_tool(tool: str) -> str:
    """The absolute path of ``tool``, installed with apt-get first if missing and we are root.

    Raises:
        Unavailable: the tool is missing and cannot be installed here.
    """
    found = _which(tool)
    if found:
        return found
    package = _PACKAGE_OF.get(tool, tool)
    if os.geteuid() != 0:
        raise Unavailable(f"{tool} is not installed and we are not root to apt-get install {package}")
    apt = _which("apt-get")
    if apt is None:
        raise Unavailable(f"{tool} is not installed and there is no apt-get to install {package}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    attempts = [
        [apt, "install", "-y", "-qq", package],
        [apt, "update", "-qq"],
        [apt, "install", "-y", "-qq", package],
    ]
    errors = []
    for argv in attempts:
        done = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_APT_TIMEOUT
        )
        if done.returncode != 0:
            errors.append(f"{' '.join(argv)}: {done.stderr.strip()[-500:]}")
        elif argv[1] == "install":
            break
    found = _which(tool)
    if found is None:
        raise Unavailable(f"{tool} is missing and apt-get install {package} failed: {'; '.join(errors)}")
    return found


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (ssh refuses group-readable keys)."""
    path.write_text(text)
    path.chmod(mode)
    return path


def generate_key(path: Path, comment: str) -> tuple[Path, str]:
    """A new ed25519 key pair at ``path`` / ``path.pub``; returns the private path and the public line."""
    keygen = ensure_tool("ssh-keygen")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    return path, path.with_name(path.name + ".pub").read_text().strip()


def known_hosts_line(host: str, port: int, public_line: str) -> str:
    """A known_hosts line for ``host:port`` (``[host]:port`` unless the port is 22)."""
    keytype, key = public_line.split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {keytype} {key}\n"


def sshd_config_text(
    *,
    listen: str,
    port: int,
    host_key: Path,
    authorized_keys: Path,
    home: Path,
    token: str,
) -> str:
    """The sshd_config of a private test sshd.

    Logins are by key only, for the current user. ``SetEnv`` gives every
    session a private, empty ``HOME`` (so the remote shell reads no
    ``~/.bashrc``: fast, and no pyenv shims in the way), the token that
    teardown uses to find every process started through this sshd, and
    this process's settings of the numeric libraries (:func:`numeric_settings`).
    """
    root_login = "PermitRootLogin prohibit-password\n" if getpass.getuser() == "root" else ""
    numeric = "".join(f' {name}="{value}"' for name, value in numeric_settings().items())
    return (
        f"Port {port}\n"
        f"ListenAddress {listen}\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        f"{root_login}"
        "UsePAM no\n"
        "StrictModes no\n"
        "PidFile none\n"
        "UseDNS no\n"
        "PrintMotd no\n"
        "X11Forwarding no\n"
        "AllowTcpForwarding yes\n"
        "AllowAgentForwarding yes\n"
        "MaxStartups 200:30:400\n"
        f"SetEnv HOME={home} MANYMAP_TESTHOSTS={token}{numeric}\n"
        "Subsystem sftp internal-sftp\n"
        "LogLevel VERBOSE\n"
    )


#: Prefixes of the environment variables that choose how numeric libraries compute.
NUMERIC_PREFIXES = ("OPENBLAS_", "GOTOBLAS_", "OMP_", "MKL_", "BLIS_", "NPY_")


def numeric_settings() -> dict[str, str]:
    """This process's environment variables that choose the numeric libraries' kernels
    and threads (:data:`NUMERIC_PREFIXES`), for a test host's sessions.

    A namespace host is this machine: tasks it runs must compute as this process
    does. sshd gives a session a clean environment, so on a machine whose
    environment pins ``OPENBLAS_CORETYPE`` (as some CI images do) the hosts'
    OpenBLAS would pick another kernel and give results an ulp apart, and a
    seeded sampler's chain would not equal its serial run. A value sshd_config
    cannot quote (with a double quote or a line break in it) is left out.
    """
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith(NUMERIC_PREFIXES) and '"' not in value and "\n" not in value
    }


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for candidate in _all_pids():
        parent = _ppid(candidate)
        if parent is not None:
            children.setdefault(parent, []).append(candidate)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def pids_with_environ(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (``NAME=value``), this process excluded."""
    needle = marker.encode()
    found = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def _socket_inodes(pid: int, local_port: int, remote_port: int) -> set[str]:
    """Inodes of the TCP sockets local_port <-> remote_port in the network namespace of ``pid``."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                inodes.add(inode)
    return inodes


def pids_with_socket(
    candidates: Iterable[int], netns_pid: int, local_port: int, remote_port: int
) -> list[int]:
    """Those of ``candidates`` holding the TCP connection ``local_port`` <-> ``remote_port``.

    ``netns_pid`` is any process in the network namespace where the
    connection lives (the sshd listener), whose ``/proc/PID/net/tcp`` lists it.
    """
    inodes = {f"socket:[{inode}]" for inode in _socket_inodes(netns_pid, local_port, remote_port)}
    if not inodes:
        return []
    holders = []
    for pid in candidates:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in inodes:
                holders.append(pid)
                break
    return holders


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pids(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM ``pids``, then SIGKILL whatever is left after ``grace`` seconds; wait at most 5 s more."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = [pid for pid in pids if _alive(pid)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if _alive(pid)]
            if left:
                time.sleep(0.02)
        if not left:
            return
