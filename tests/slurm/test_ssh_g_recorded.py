"""`ssh -G` output as OpenSSH prints it (recorded samples, fixtures/SOURCES.md) read by the resolver."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from msquant_desktop.slurm import ssh_config
from msquant_desktop.slurm.ssh_config import (
    Resolver,
    SshConfigError,
    expand_tokens,
    options_from_ssh_g,
    parse_jump,
    parse_ssh_g,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ssh_g"


def recorded(name: str) -> str:
    return "".join(
        line for line in (FIXTURES / name).read_text().splitlines(True) if not line.startswith("## ")
    )


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    # the 9.2 samples were recorded as root: ssh wrote the passwd home /root into known_hosts paths
    monkeypatch.setattr(ssh_config, "_passwd_home", lambda: "/root")
    return tmp_path


def test_openssh_9_proxyjump(home: Path) -> None:
    options = options_from_ssh_g(parse_ssh_g(recorded("openssh_9.2p1_proxyjump.txt")), "a")
    assert (options.hostname, options.port, options.user) == ("10.0.0.1", 2200, "alice")
    assert options.proxy_jump == ("j1", "bob@j2:2222") and options.proxy_command is None
    assert options.identity_files == (str(home / ".ssh/custom_key"),)  # `~` is $HOME
    # 9.2 printed /root/kh1 (the passwd home); with another $HOME it is the `~` the config meant
    assert options.user_known_hosts == (home / "kh1", Path("/tmp/kh2"))
    assert options.global_known_hosts == (Path("/etc/ssh/ssh_known_hosts"), Path("/etc/ssh/ssh_known_hosts2"))
    assert not options.identities_only and options.host_key_alias is None


def test_openssh_9_proxycommand_tokens(home: Path) -> None:
    options = options_from_ssh_g(parse_ssh_g(recorded("openssh_9.2p1_proxycommand.txt")), "pc")
    assert options.proxy_command == "ssh -W %h:%p -l %r gateway # comment?"  # left to the shell
    assert options.proxy_jump == ()
    assert len(options.identity_files) == 7  # OpenSSH's defaults when no IdentityFile is set
    assert options.identity_files[3] == str(home / ".ssh/id_ed25519")
    assert expand_tokens(options.proxy_command, options) == (
        f"ssh -W 10.0.0.2:22 -l {options.user} gateway # comment?"
    )
    with pytest.raises(SshConfigError, match="unknown token %z"):
        expand_tokens("nc %z", options)
    assert expand_tokens("echo 100%% %n", options) == "echo 100% pc"


def test_openssh_8_host_key_alias_and_unexpanded_tilde(home: Path) -> None:
    options = options_from_ssh_g(parse_ssh_g(recorded("openssh_8_hostkeyalias_vuls.txt")), "vuls")
    assert (options.hostname, options.port, options.user) == ("127.0.0.1", 2222, "root")
    assert options.host_key_alias == "vuls" and options.identities_only
    assert options.user_known_hosts == (home / ".ssh/known_hosts", home / ".ssh/known_hosts2")
    assert parse_ssh_g(recorded("openssh_8_hostkeyalias_vuls.txt"))["sendenv"] == ["LANG", "LC_*"]
    assert parse_ssh_g("canonicaldomains\n")["canonicaldomains"] == [""]


def test_jump_specs() -> None:
    assert parse_jump("j1") == (None, "j1", None)
    assert parse_jump("bob@j2:2222") == ("bob", "j2", 2222)
    assert parse_jump("ssh://bob@[::1]:22") == ("bob", "::1", 22)
    with pytest.raises(SshConfigError):
        parse_jump("bob@")


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh")
def test_a_destination_that_looks_like_an_option_is_never_one(tmp_path: Path) -> None:
    """Everything after `--` is the destination: ssh refuses the name, nothing is run."""
    resolver = Resolver(tmp_path / "no_config")
    for destination in (f"-oProxyCommand=touch {tmp_path}/ran", f"-oProxyCommand=touch {tmp_path}/ran@host"):
        with pytest.raises(SshConfigError, match="invalid characters"):
            resolver.target(destination)
    assert not (tmp_path / "ran").exists()


def test_an_ssh_that_is_not_openssh_falls_back_to_paramiko(tmp_path: Path) -> None:
    """A client without `-G` (here `true`, which says no OpenSSH version) is not asked."""
    config = tmp_path / "config"
    config.write_text("Host c\n    HostName 10.1.2.3\n    Port 2201\n    User u\n")
    resolver = Resolver(config, ssh=shutil.which("true"))
    assert resolver.resolved_by.startswith("paramiko") and resolver.ssh is None
    target = resolver.target("c")
    assert (target.hostname, target.port, target.user) == ("10.1.2.3", 2201, "u")


def test_openssh_9_identity_file_tokens(home: Path) -> None:
    options = options_from_ssh_g(parse_ssh_g(recorded("openssh_9.2p1_tokens.txt")), "t")
    assert options.identity_files == (str(home / ".ssh/real.example_root_key"),)  # %h, %r, then ~
    assert options.user_known_hosts == (home / ".ssh/kh_real.example",)  # expanded by ssh already
    assert options.identity_agent == str(home / "agent.sock")
    assert options.proxy_jump == () and options.proxy_command is None
