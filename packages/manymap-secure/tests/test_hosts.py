"""Host specs and profiles: parsing, ssh_config resolution, overrides (no network)."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from manymap.secure import SSH_CONFIG_ENV, HostProfile, default_ssh_config, parse_host_spec, resolve


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("node7", (None, "node7", None)),
        ("alice@node7", ("alice", "node7", None)),
        ("alice@node7:2222", ("alice", "node7", 2222)),
        ("node7:22", (None, "node7", 22)),
        ("10.1.2.3:2200", (None, "10.1.2.3", 2200)),
        ("ssh://alice@node7:2222", ("alice", "node7", 2222)),
        ("ssh://node7", (None, "node7", None)),
        ("[::1]:2222", (None, "::1", 2222)),
        ("bob@[fe80::1]", ("bob", "fe80::1", None)),
        ("fe80::1", (None, "fe80::1", None)),
        ("bob@fe80::1", ("bob", "fe80::1", None)),
    ],
)
def test_parse_host_spec(spec: str, expected: tuple[str | None, str, int | None]) -> None:
    assert parse_host_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "a@", "@host", "host:port", "host:0", "host:70000", "a b", "host/x"])
def test_parse_host_spec_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_host_spec(spec)


def test_profile_defaults_and_address() -> None:
    profile = HostProfile("node7")
    assert profile.port == 22
    assert profile.user == getpass.getuser()
    assert profile.known_hosts == ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
    assert not profile.accept_new_host_keys
    assert profile.address == f"{profile.user}@node7:22"
    assert HostProfile("::1", 2222, "bob").address == "bob@[::1]:2222"


def test_profiles_compare_without_alias_and_are_hashable() -> None:
    a = HostProfile("10.0.0.1", alias="one", identity_files=["k"])  # type: ignore[arg-type]
    b = HostProfile("10.0.0.1", alias="two", identity_files=("k",))
    assert a == b
    assert hash(a) == hash(b)
    assert a.identity_files == ("k",)
    assert a != a.replace(port=2222)


def test_profile_validates() -> None:
    with pytest.raises(ValueError, match="port"):
        HostProfile("h", 0)
    with pytest.raises(ValueError, match="connect_timeout"):
        HostProfile("h", connect_timeout=0)
    hop: HostProfile | None = None
    for index in range(8):
        hop = HostProfile(f"j{index}", jump=hop)
    assert len(HostProfile("target", jump=hop).chain()) == 9  # 8 jumps are fine
    with pytest.raises(ValueError, match="jump hosts"):
        HostProfile("target", jump=HostProfile("j8", jump=hop))


CONFIG = """
Host web
    HostName 10.9.8.7
    User alice
    Port 2201
    IdentityFile {keys}/id_a
    IdentityFile {keys}/id_b
    IdentitiesOnly yes
    UserKnownHostsFile {keys}/kh1 {keys}/kh2
    StrictHostKeyChecking accept-new
    ConnectTimeout 4
    ServerAliveInterval 7
    ServerAliveCountMax 5
    ProxyJump gw

Host gw
    HostName 10.9.8.1
    User gate

Host deep
    HostName 10.9.8.9
    ProxyJump first,second

Host first second
    User hop

Host strict
    StrictHostKeyChecking yes

Host loose
    StrictHostKeyChecking no

Host viacmd
    ProxyCommand nc %h %p

Host *.lab
    User labuser
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG.format(keys=tmp_path))
    return path


def test_resolve_reads_every_supported_option(config: Path, tmp_path: Path) -> None:
    profile = resolve("web", ssh_config=config)
    assert profile.hostname == "10.9.8.7"
    assert profile.user == "alice"
    assert profile.port == 2201
    assert profile.identity_files == (str(tmp_path / "id_a"), str(tmp_path / "id_b"))
    assert profile.identities_only
    assert profile.known_hosts == (str(tmp_path / "kh1"), str(tmp_path / "kh2"))
    assert profile.accept_new_host_keys
    assert profile.connect_timeout == 4
    assert profile.keepalive_interval == 7
    assert profile.keepalive_count_max == 5
    assert profile.alias == "web"
    assert profile.jump == HostProfile("10.9.8.1", user="gate")
    assert str(profile) == "alice@10.9.8.7:2201 via gate@10.9.8.1:22"


def test_resolve_spec_wins_over_config(config: Path) -> None:
    profile = resolve("bob@web:2300", ssh_config=config)
    assert (profile.user, profile.hostname, profile.port) == ("bob", "10.9.8.7", 2300)


def test_resolve_overrides_win_over_everything(config: Path, tmp_path: Path) -> None:
    profile = resolve(
        "bob@web:2300",
        ssh_config=config,
        user="carol",
        port=2400,
        identity_file=tmp_path / "extra",
        through="first",
        accept_new_host_keys=False,
        connect_timeout=2.5,
        keepalive_interval=0,
    )
    assert (profile.user, profile.port) == ("carol", 2400)
    assert profile.identity_files[0] == str(tmp_path / "extra")
    assert profile.jump is not None
    assert profile.jump.alias == "first"
    assert not profile.accept_new_host_keys
    assert profile.connect_timeout == 2.5
    assert profile.keepalive_interval == 0


def test_resolve_a_jump_chain_goes_in_order(config: Path) -> None:
    profile = resolve("deep", ssh_config=config)
    assert [hop.alias for hop in profile.chain()] == ["first", "second", "deep"]
    assert profile.jump is not None
    assert profile.jump.user == "hop"
    explicit = resolve("node", ssh_config=config, through="gw,web")
    assert [hop.alias for hop in explicit.chain()] == ["gw", "web", "node"]


def test_strict_host_key_checking_values(config: Path) -> None:
    assert not resolve("strict", ssh_config=config).accept_new_host_keys
    assert resolve("loose", ssh_config=config).accept_new_host_keys
    assert not resolve("unlisted", ssh_config=config).accept_new_host_keys


def test_wildcard_patterns(config: Path) -> None:
    profile = resolve("node3.lab", ssh_config=config)
    assert (profile.hostname, profile.user) == ("node3.lab", "labuser")


def test_proxy_command_is_refused_loudly(config: Path) -> None:
    with pytest.raises(ValueError, match="ProxyCommand"):
        resolve("viacmd", ssh_config=config)


def test_a_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ssh config"):
        resolve("web", ssh_config=tmp_path / "nope")


def test_the_default_config_comes_from_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SSH_CONFIG_ENV, str(config))
    assert default_ssh_config() == config
    assert resolve("web").hostname == "10.9.8.7"
    monkeypatch.setenv(SSH_CONFIG_ENV, str(tmp_path / "absent"))
    assert resolve("web").hostname == "web"  # a missing default config is no error


def test_resolve_a_profile_applies_only_overrides() -> None:
    base = HostProfile("h", 2222, "u")
    assert resolve(base) is base
    assert resolve(base, port=2300) == base.replace(port=2300)
