"""What a recursive copy copies: a directory tree walked into a flat plan, on either side.

A plan is a list of ``(source, destination, stat)`` in walk order, each
directory before its content, so the copy creates directories first and sets
their modes last (walking the plan backwards). Sources are followed through
symlinks, as ``scp -r`` does; a symlink loop is walked once (locally, by
device and inode) or refused (remotely, by depth); dangling symlinks are left out.
"""

from __future__ import annotations

import os
import posixpath
import stat

import paramiko

from ._errors import CopyError
from ._hosts import HostProfile

__all__ = ["MAX_DEPTH", "plan_local", "plan_remote", "remote_mkdir"]

MAX_DEPTH = 64


def plan_local(
    directory: str,
    remote: str,
    st: os.stat_result,
    plan: list[tuple[str, str, os.stat_result]],
    seen: set[tuple[int, int]],
    depth: int,
) -> None:
    """Add the local ``directory`` (going to ``remote``) and its content to ``plan``."""
    key = (st.st_dev, st.st_ino)
    if key in seen or depth > MAX_DEPTH:
        return  # a symlink loop: copied once
    seen.add(key)
    plan.append((directory, remote, st))
    try:
        names = sorted(os.listdir(directory))
    except OSError as error:
        raise CopyError(
            f"cannot list {directory}: {error.strerror}", path=directory, errno=error.errno
        ) from None
    for name in names:
        local = os.path.join(directory, name)
        try:
            child = os.stat(local)
        except FileNotFoundError:
            continue  # a dangling symlink: nothing to copy
        target = posixpath.join(remote, name)
        if stat.S_ISDIR(child.st_mode):
            plan_local(local, target, child, plan, seen, depth + 1)
        elif stat.S_ISREG(child.st_mode):
            plan.append((local, target, child))


def plan_remote(
    sftp: paramiko.SFTPClient,
    profile: HostProfile,
    directory: str,
    local: str,
    attrs: paramiko.SFTPAttributes,
    plan: list[tuple[str, str, paramiko.SFTPAttributes]],
    depth: int,
) -> None:
    """Add the remote ``directory`` (going to ``local``) and its content to ``plan``."""
    if depth > MAX_DEPTH:
        raise CopyError(
            f"directories nested deeper than {MAX_DEPTH} (a symlink loop?): {directory}",
            host=profile.hostname,
            port=profile.port,
            path=directory,
        )
    plan.append((directory, local, attrs))
    for entry in sorted(sftp.listdir_attr(directory), key=lambda a: a.filename):
        remote = posixpath.join(directory, entry.filename)
        child = entry
        if stat.S_ISLNK(entry.st_mode or 0):
            try:
                child = sftp.stat(remote)
            except FileNotFoundError:
                continue  # a dangling symlink
        target = os.path.join(local, entry.filename)
        if stat.S_ISDIR(child.st_mode or 0):
            plan_remote(sftp, profile, remote, target, child, plan, depth + 1)
        elif stat.S_ISREG(child.st_mode or 0):
            plan.append((remote, target, child))


def remote_mkdir(sftp: paramiko.SFTPClient, path: str) -> None:
    """Create a remote directory; one that exists already is fine."""
    try:
        sftp.mkdir(path)
    except OSError:
        try:
            if stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                return
        except OSError:
            pass
        raise
