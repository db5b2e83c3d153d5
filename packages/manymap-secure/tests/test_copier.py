"""Copier against a real sshd: files and directories both ways, modes, progress, missing sources."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from manymap.launcher import AbstractLauncher
from manymap.secure import (
    Copier,
    CopyError,
    CopyResult,
    HostProfile,
    RemotePath,
    SourceNotFoundError,
    connect,
    parse_location,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node7:data/x", RemotePath("node7", "data/x")),
        ("alice@node7:/abs", RemotePath("alice@node7", "/abs")),
        ("node7:", RemotePath("node7", ".")),
        ("ssh://alice@node7:2222/tmp/x", RemotePath("alice@node7:2222", "/tmp/x")),
        ("ssh://node7", RemotePath("node7", ".")),
        ("[::1]:/tmp/x", RemotePath("[::1]", "/tmp/x")),
        ("bob@[fe80::1]:f", RemotePath("bob@[fe80::1]", "f")),
        ("./a:b", "./a:b"),
        ("/abs/x:y", "/abs/x:y"),
        ("plain", "plain"),
    ],
)
def test_parse_location(text: str, expected: object) -> None:
    assert parse_location(text) == expected


def test_exactly_one_side_is_remote(profile: HostProfile, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Copier(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match="exactly one"):
        Copier(RemotePath(profile, "a"), RemotePath(profile, "b"))


def _tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "sub" / "data.bin").write_bytes(os.urandom(700_000))
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "link-to-a").symlink_to("a.txt")
    (root / "a.txt").chmod(0o640)
    (root / "run.sh").chmod(0o755)
    (root / "sub" / "deeper").chmod(0o700)
    os.utime(root / "a.txt", (1_600_000_000, 1_600_000_000))


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (mode, digest)
    return found


def test_a_directory_goes_up_and_comes_back_identical(
    profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    source = tmp_path / "src"
    _tree(source)
    up = Copier(source, RemotePath(profile, str(tmp_path / "remote")))
    assert isinstance(up, AbstractLauncher)
    result = up.run(timeout=60)
    assert isinstance(result, CopyResult)
    assert result.files == 5  # the symlink is followed: a.txt's content twice
    assert result.bytes == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert result.destination.endswith(f":{tmp_path / 'remote'}")
    remote = tmp_path / "remote"  # the test host shares this filesystem
    assert _snapshot(remote) == _snapshot(source)
    assert (remote / "a.txt").stat().st_mtime == 1_600_000_000
    assert not (remote / "link-to-a").is_symlink()

    down = Copier(
        f"ssh://{profile.user}@127.0.0.1:{profile.port}{remote}", tmp_path / "back", **_opts(profile)
    )
    assert down.run(timeout=60).files == 5
    assert _snapshot(tmp_path / "back") == _snapshot(source)


def _opts(profile: HostProfile) -> dict[str, object]:
    """What a bare ``ssh://`` URL needs besides the URL: the key and the known_hosts."""
    return {
        "identity_file": profile.identity_files[0],
        "known_hosts": profile.known_hosts[0],
        "ssh_config": os.devnull,
    }


def test_into_an_existing_directory_the_source_keeps_its_name(
    profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    source = tmp_path / "report.txt"
    source.write_text("numbers\n")
    target = tmp_path / "inbox"
    target.mkdir()
    with connect(profile) as connection:
        Copier(source, RemotePath(connection, str(target))).run(timeout=30)
        assert (target / "report.txt").read_text() == "numbers\n"
        Copier(RemotePath(connection, str(target / "report.txt")), tmp_path / "copy.txt").run(timeout=30)
        assert (tmp_path / "copy.txt").read_text() == "numbers\n"
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        Copier(RemotePath(connection, str(target)), outbox).run(timeout=30)
        assert (outbox / "inbox" / "report.txt").read_text() == "numbers\n"


def test_an_existing_file_is_overwritten(profile: HostProfile, tmp_path: Path) -> None:
    source, target = tmp_path / "new", tmp_path / "old"
    source.write_text("new")
    target.write_text("old and longer")
    Copier(source, RemotePath(profile, str(target))).run(timeout=30)
    assert target.read_text() == "new"


def test_progress_is_monotonic_and_ends_at_the_total(profile: HostProfile, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.write_bytes(os.urandom(3_000_000))
    seen: list[tuple[int, int]] = []
    Copier(
        source, RemotePath(profile, str(tmp_path / "big2")), progress=lambda d, t: seen.append((d, t))
    ).run(timeout=60)
    assert len(seen) > 2
    assert all(total == 3_000_000 for _, total in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert seen[-1] == (3_000_000, 3_000_000)
    assert (tmp_path / "big2").read_bytes() == source.read_bytes()


def test_a_missing_local_source(profile: HostProfile, tmp_path: Path) -> None:
    copier = Copier(tmp_path / "nope", RemotePath(profile, str(tmp_path / "x")))
    with pytest.raises(SourceNotFoundError, match="no such local file or directory") as info:
        copier.run(timeout=30)
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "x").exists()


def test_a_missing_remote_source_names_host_and_port(
    profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    copier = Copier(RemotePath(profile, str(tmp_path / "nope")), tmp_path / "x")
    with pytest.raises(
        SourceNotFoundError, match=rf"127\.0\.0\.1:{profile.port}: no such remote file"
    ) as info:
        copier.run(timeout=30)
    assert info.value.path == str(tmp_path / "nope")
    assert not (tmp_path / "x").exists()


def test_a_destination_whose_directory_is_missing(profile: HostProfile, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(CopyError, match="destination's directory does not exist"):
        Copier(source, RemotePath(profile, str(tmp_path / "no" / "where"))).run(timeout=30)
    with pytest.raises(CopyError, match="destination's directory does not exist"):
        Copier(RemotePath(profile, str(source)), tmp_path / "no" / "where").run(timeout=30)


def test_a_directory_onto_a_remote_file_is_a_copy_error(profile: HostProfile, tmp_path: Path) -> None:
    source = tmp_path / "dir"
    (source / "inner").mkdir(parents=True)
    (source / "inner" / "f").write_text("x")
    (tmp_path / "occupied").write_text("a file")
    target = tmp_path / "occupied" / "dir"
    with pytest.raises(CopyError, match=rf"127\.0\.0\.1:{profile.port}: ") as info:
        Copier(source, RemotePath(profile, str(target))).run(timeout=30)
    assert not isinstance(info.value, SourceNotFoundError)


def test_kill_cancels_a_copy(profile: HostProfile, tmp_path: Path, no_leaks: None) -> None:
    source = tmp_path / "huge"
    with source.open("wb") as handle:
        handle.truncate(400 * 1024 * 1024)  # sparse: cheap to make, slow to copy
    started = threading.Event()
    copier = Copier(source, RemotePath(profile, str(tmp_path / "huge2")), progress=lambda d, t: started.set())
    copier.launch()
    assert copier.pid() == os.getpid()
    assert started.wait(30)
    assert copier.running()
    copier.kill()
    assert not copier.running()
    with pytest.raises(CopyError, match="cancelled"):
        copier.response(timeout=5)
    assert (tmp_path / "huge2").stat().st_size < source.stat().st_size
