"""The eight shapes of an ordinary ~/.ssh/config, each connected through the real testbed sshds.

A real `~/.ssh`-like folder under tmp is `$HOME`; OpenSSH's own `ssh -F CONFIG -G ALIAS` resolves it
(the app's resolver), paramiko carries the connection.  The cluster's sshd refuses TCP forwarding;
the second sshd (the jump host) allows it and logs every login, so a route that skips a hop or
connects directly is seen, not assumed.  The agent is a real `ssh-agent` started here.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from msquant_desktop.slurm.connection import (
    HostKeyChanged,
    PassphraseRequired,
    SshConnection,
    SshError,
    UnknownHostKey,
    resolve_target,
)
from msquant_desktop.slurm.ssh_config import Resolver
from tests.conftest import run_cli_argv

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(shutil.which("ssh") is None, reason="needs OpenSSH's ssh for ssh -G"),
]

PASSPHRASE = "correct horse"


@dataclass
class SshHome:
    home: Path
    config: Path
    testbed: object

    @property
    def dot_ssh(self) -> Path:
        return self.home / ".ssh"

    def logins_via_jump(self) -> int:
        return Path(self.testbed.jump_log).read_text(errors="replace").count("Accepted publickey")  # type: ignore[attr-defined]


def write_config(home: Path, bed) -> Path:  # type: ignore[no-untyped-def]
    """The user's config: an Include, plain aliases, two jump hosts, a ProxyCommand, and so on."""
    ssh = home / ".ssh"
    host, port, user, jump = bed.host, bed.port, bed.user, bed.jump_port
    main = f"""\
# A user config as people write them (tilde paths, an Include, blocks in any order).
Include {ssh}/config.d/*.conf

Host plain
    HostName {host}
    Port {port}
    User {user}
    IdentityFile ~/.ssh/cluster_key

Host plain-by-name
    HostName localhost
    Port {port}
    User {user}
    IdentityFile ~/.ssh/cluster_key

Host jump1
    HostName {host}
    Port {jump}
    User {user}
    IdentityFile ~/.ssh/cluster_key

Host jump2
    HostName {host}
    Port {jump}
    HostKeyAlias jump2.testbed
    User {user}
    IdentityFile ~/.ssh/cluster_key

Host two-hops
    HostName {host}
    Port {port}
    User {user}
    IdentityFile ~/.ssh/cluster_key
    ProxyJump jump1,jump2

Host proxied
    # not resolvable: only the ProxyCommand (OpenSSH's ssh -W through the jump host) gets there
    HostName cluster.invalid
    Port {port}
    User {user}
    IdentityFile ~/.ssh/cluster_key
    ProxyCommand ssh -F {ssh / "config"} -i {ssh / "cluster_key"} -o BatchMode=yes -o UserKnownHostsFile={ssh / "known_hosts"} -W {host}:%p jump1

Host default-key
    HostName {host}
    Port {port}
    User {user}

Host agent-key
    HostName {host}
    Port {port}
    User {user}
    IdentityFile ~/.ssh/locked_key

Host own-known-hosts
    HostName {host}
    Port {port}
    User {user}
    IdentityFile ~/.ssh/cluster_key
    UserKnownHostsFile ~/.ssh/cluster_known_hosts
"""
    (ssh / "config.d").mkdir(parents=True)
    (ssh / "config.d" / "cluster.conf").write_text(
        f"Host included\n    HostName {host}\n    Port {port}\n    User {user}\n    IdentityFile ~/.ssh/cluster_key\n"
    )
    config = ssh / "config"
    config.write_text(main)
    return config


@pytest.fixture
def ssh_home(testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SshHome:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    config = write_config(home, testbed)
    key = home / ".ssh" / "cluster_key"
    shutil.copyfile(testbed.key, key)
    key.chmod(0o600)
    (home / ".ssh" / "known_hosts").write_text(
        f"{testbed.host_label} {testbed.host_key}\n"
        f"[localhost]:{testbed.port} {testbed.host_key}\n"
        f"[cluster.invalid]:{testbed.port} {testbed.host_key}\n"
        f"[{testbed.host}]:{testbed.jump_port} {testbed.jump_host_key}\n"
        f"[jump2.testbed]:{testbed.jump_port} {testbed.jump_host_key}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return SshHome(home, config, testbed)


@pytest.fixture
def locked_key(ssh_home: SshHome) -> Path:
    """~/.ssh/locked_key: the cluster's key, encrypted with PASSPHRASE (the `agent-key` alias's)."""
    locked = ssh_home.dot_ssh / "locked_key"
    shutil.copyfile(ssh_home.dot_ssh / "cluster_key", locked)
    locked.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", PASSPHRASE, "-f", str(locked)], check=True)
    pub = subprocess.run(
        ["ssh-keygen", "-y", "-P", PASSPHRASE, "-f", str(locked)], check=True, capture_output=True, text=True
    ).stdout
    locked.with_name("locked_key.pub").write_text(pub)
    return locked


@pytest.fixture
def agent(locked_key: Path, tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent holding the encrypted ~/.ssh/locked_key, added with its passphrase once."""
    locked = locked_key
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        askpass = tmp_path / "askpass.sh"
        askpass.write_text(f"#!/bin/sh\necho '{PASSPHRASE}'\n")
        askpass.chmod(0o700)
        env = {
            **os.environ,
            "SSH_AUTH_SOCK": str(sock),
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
        }
        subprocess.run(
            ["ssh-add", str(locked)], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
        )
        yield sock
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(5)


def connect_and_echo(target, **kwargs) -> str:  # type: ignore[no-untyped-def]
    connection = SshConnection(target, **kwargs)
    connection.connect()
    try:
        result = connection.run(["sh", "-c", 'echo "$(hostname) $(id -un) ok"'])
        assert result.rc == 0, result.err
        return result.out.strip()
    finally:
        connection.close()


@pytest.mark.parametrize("alias", ["plain", "plain-by-name", "included"])
def test_plain_and_included_aliases(ssh_home: SshHome, alias: str) -> None:
    target = resolve_target(alias, ssh_config=ssh_home.config)
    assert (target.port, target.user) == (ssh_home.testbed.port, ssh_home.testbed.user)  # type: ignore[attr-defined]
    assert target.key_files == (str(ssh_home.dot_ssh / "cluster_key"),)  # `~` is $HOME
    assert target.known_hosts == ssh_home.dot_ssh / "known_hosts"
    assert target.resolved_by.startswith("OpenSSH")
    before = ssh_home.logins_via_jump()
    assert connect_and_echo(target).endswith(f"{ssh_home.testbed.user} ok")  # type: ignore[attr-defined]
    assert ssh_home.logins_via_jump() == before  # direct


def test_proxyjump_with_two_hops_goes_through_both(ssh_home: SshHome) -> None:
    target = resolve_target("two-hops", ssh_config=ssh_home.config)
    bed = ssh_home.testbed
    assert [hop.split("@")[1] for hop in target.route] == [
        f"{bed.host}:{bed.jump_port}",  # type: ignore[attr-defined]
        f"{bed.host}:{bed.jump_port}",  # type: ignore[attr-defined]
        f"{bed.host}:{bed.port}",  # type: ignore[attr-defined]
    ]
    before = ssh_home.logins_via_jump()
    assert connect_and_echo(target).endswith("ok")
    assert ssh_home.logins_via_jump() - before == 2  # jump1, then jump2 through jump1


def test_every_hop_is_verified_against_known_hosts(ssh_home: SshHome) -> None:
    """The first hop's unknown key stops the chain there; a changed key on the second hop too."""
    bed = ssh_home.testbed
    known = ssh_home.dot_ssh / "known_hosts"
    original = known.read_text()
    known.write_text("".join(line + "\n" for line in original.splitlines() if str(bed.jump_port) not in line))  # type: ignore[attr-defined]
    with pytest.raises(UnknownHostKey) as unknown:
        SshConnection(resolve_target("two-hops", ssh_config=ssh_home.config)).connect()
    assert unknown.value.host_label == f"[{bed.host}]:{bed.jump_port}"  # type: ignore[attr-defined]
    assert unknown.value.known_hosts == known

    other = ssh_home.home / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    other_key = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known.write_text(
        original.replace(
            f"[jump2.testbed]:{bed.jump_port} {bed.jump_host_key}",
            f"[jump2.testbed]:{bed.jump_port} {other_key}",
        )
    )  # type: ignore[attr-defined]
    with pytest.raises(HostKeyChanged) as changed:
        SshConnection(resolve_target("two-hops", ssh_config=ssh_home.config)).connect()
    assert changed.value.host_label == f"[jump2.testbed]:{bed.jump_port}"  # type: ignore[attr-defined]


def test_proxycommand_is_the_only_way_there(ssh_home: SshHome) -> None:
    target = resolve_target("proxied", ssh_config=ssh_home.config)
    assert (
        target.proxy_command is not None
        and f"-W {ssh_home.testbed.host}:{ssh_home.testbed.port} jump1" in target.proxy_command
    )  # type: ignore[attr-defined]
    before = ssh_home.logins_via_jump()
    assert connect_and_echo(target).endswith("ok")
    assert ssh_home.logins_via_jump() - before == 1  # OpenSSH's ssh -W logged in to the jump host


def test_a_key_only_at_the_default_path_is_tried(ssh_home: SshHome) -> None:
    shutil.copyfile(ssh_home.dot_ssh / "cluster_key", ssh_home.dot_ssh / "id_ed25519")
    (ssh_home.dot_ssh / "id_ed25519").chmod(0o600)
    target = resolve_target("default-key", ssh_config=ssh_home.config)
    assert str(ssh_home.dot_ssh / "id_ed25519") in target.key_files
    assert connect_and_echo(target).endswith("ok")


def test_an_encrypted_key_held_by_the_agent_needs_no_passphrase(
    ssh_home: SshHome, agent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = resolve_target("agent-key", ssh_config=ssh_home.config)
    with pytest.raises(PassphraseRequired):  # without the agent the key file is locked
        SshConnection(target).connect()
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    assert connect_and_echo(target).endswith("ok")  # the agent's key, no passphrase asked


def test_the_agents_copy_of_the_configured_key_goes_before_its_other_keys(
    ssh_home: SshHome, agent: Path, locked_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As OpenSSH orders them: six other keys listed by the agent before the configured one would
    use up sshd's MaxAuthTries (6) if they were offered first ("Too many authentication failures")."""
    env = {**os.environ, "SSH_AUTH_SOCK": str(agent), "SSH_ASKPASS": str(tmp_path / "askpass.sh")}
    env["SSH_ASKPASS_REQUIRE"] = "force"
    subprocess.run(["ssh-add", "-D"], env=env, check=True, capture_output=True)
    for i in range(6):
        other = tmp_path / f"other_{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        subprocess.run(["ssh-add", str(other)], env=env, check=True, capture_output=True)
    subprocess.run(
        ["ssh-add", str(locked_key)], env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL
    )
    listed = subprocess.run(["ssh-add", "-L"], env=env, check=True, capture_output=True, text=True).stdout
    assert (
        len(listed.splitlines()) == 7
        and listed.splitlines()[-1].split()[1]
        == locked_key.with_name("locked_key.pub").read_text().split()[1]
    )
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    assert connect_and_echo(resolve_target("agent-key", ssh_config=ssh_home.config)).endswith("ok")


def test_user_known_hosts_file_is_the_one_read(ssh_home: SshHome) -> None:
    bed = ssh_home.testbed
    other = ssh_home.home / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    # ~/.ssh/known_hosts now holds a wrong key for the cluster: reading it would refuse the host
    (ssh_home.dot_ssh / "known_hosts").write_text(
        f"{bed.host_label} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    )  # type: ignore[attr-defined]
    (ssh_home.dot_ssh / "cluster_known_hosts").write_text(f"{bed.host_label} {bed.host_key}\n")  # type: ignore[attr-defined]
    target = resolve_target("own-known-hosts", ssh_config=ssh_home.config)
    assert target.known_hosts == ssh_home.dot_ssh / "cluster_known_hosts"
    assert connect_and_echo(target).endswith("ok")
    with pytest.raises(HostKeyChanged):
        connect_and_echo(resolve_target("plain", ssh_config=ssh_home.config))


def test_paramiko_parser_is_the_fallback(ssh_home: SshHome) -> None:
    """Without OpenSSH the same plain alias connects, and the target says which parser read it."""
    target = Resolver(ssh_home.config, ssh=None).target("plain")
    assert target.resolved_by.startswith("paramiko")
    assert "paramiko" in target.describe()
    assert connect_and_echo(target).endswith("ok")


def test_accepting_a_jump_hosts_key_saves_it_for_that_hop(qtbot, ssh_home: SshHome, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the app's service: each hop's unknown key is asked for in turn, saved to that hop's
    file, and the cluster connects through both jump hosts."""
    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.slurm.profiles import save_profiles
    from msquant_desktop.store import connect

    bed = ssh_home.testbed
    known = ssh_home.dot_ssh / "known_hosts"
    known.write_text(f"{bed.host_label} {bed.host_key}\n")  # type: ignore[attr-defined]
    profile = replace(bed.profile(known, host="two-hops", port=None, ssh_key_path=None), known_hosts=None)  # type: ignore[attr-defined]
    save_profiles(tmp_path / "clusters.yaml", [profile])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"), tmp_path / "runs", tmp_path / "clusters.yaml", ssh_home.config
    )
    asked: list[tuple[str, ...]] = []
    service.sig_unknown_host_key.connect(lambda *args: asked.append(args))

    def more_than(count: int):  # type: ignore[no-untyped-def]
        return lambda: len(asked) > count

    try:
        for label in (f"[{bed.host}]:{bed.jump_port}", f"[jump2.testbed]:{bed.jump_port}"):  # type: ignore[attr-defined]
            qtbot.waitUntil(more_than(len(asked)), timeout=10_000)
            name, host_label, _fingerprint, key_type, key_b64 = asked[-1]
            assert host_label == label and service.status(name).startswith("waiting:")
            service.accept_host_key(name, host_label, key_type, key_b64)
        qtbot.waitUntil(lambda: service.status("testbed") == "connected", timeout=10_000)
    finally:
        service.shutdown()
    assert known.read_text().splitlines()[1:] == [
        f"[{bed.host}]:{bed.jump_port} {bed.jump_host_key}",  # type: ignore[attr-defined]
        f"[jump2.testbed]:{bed.jump_port} {bed.jump_host_key}",  # type: ignore[attr-defined]
    ]


def test_a_failing_proxycommand_says_why(tmp_path: Path) -> None:
    """What the proxy wrote on stderr is in the one-line error (it ran through the user's shell)."""
    config = tmp_path / "config"
    config.write_text(
        "Host behind\n    HostName cluster.invalid\n    ProxyCommand sh -c 'echo jump host down >&2; exit 3'\n"
    )
    with pytest.raises(SshError, match=r"the ProxyCommand exited 3: jump host down\)$"):
        SshConnection(resolve_target("behind", ssh_config=config)).connect()


def _on_a_terminal(argv: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as its controlling terminal, as a person at a shell does,
    typing each answer once one more "Enter passphrase" prompt is on the screen (getpass flushes
    what was typed before it asked).  Its exit status and what it showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execvpe(argv[0], argv, os.environ)
    screen, pending, deadline = "", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal (it exited)
                    break
                if not data:
                    break
                screen += data.decode(errors="replace").replace("\r", "")
            if pending and screen.count("Enter passphrase") == len(answers) - len(pending) + 1:
                os.write(fd, (pending.pop(0) + "\n").encode())
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), screen


def _locked_key_cluster(ssh_home: SshHome, tmp_path: Path) -> Path:
    """A clusters.yaml whose cluster is the `agent-key` alias (its only key is ~/.ssh/locked_key)."""
    from msquant_desktop.slurm.profiles import save_profiles

    bed = ssh_home.testbed
    profile = replace(
        bed.profile(ssh_home.dot_ssh / "known_hosts", host="agent-key", port=None, ssh_key_path=None),
        known_hosts=None,
    )  # type: ignore[attr-defined]
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])
    return clusters


def test_the_cli_asks_for_a_locked_keys_passphrase_on_the_terminal_as_ssh_does(
    ssh_home: SshHome, locked_key: Path, tmp_path: Path
) -> None:
    """No agent, no keyring: on a terminal the CLI asks "Enter passphrase for key '...':" (three
    tries, a wrong one said); with no terminal (a script, cron) one line says how to unlock it."""
    clusters = _locked_key_cluster(ssh_home, tmp_path)
    argv = [
        *run_cli_argv("--data-dir", str(tmp_path / "data")),
        "slurm",
        "test",
        "testbed",
        "--clusters",
        str(clusters),
    ]
    # No controlling terminal: a new session, stdin from /dev/null.
    done = subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True, timeout=60
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"the key {locked_key} is encrypted" in lines[0]
    assert f"no terminal to ask on: add the key to ssh-agent (ssh-add {locked_key})" in lines[0]
    # On a terminal: a wrong passphrase, then the right one, each typed once its prompt is shown.
    code, screen = _on_a_terminal(argv, ["not it", PASSPHRASE])
    assert code == 0, screen
    assert screen.count(f"Enter passphrase for key '{locked_key}': ") == 2, screen
    assert f"testbed: the passphrase for {locked_key} was not accepted" in screen
    assert "testbed: connected in" in screen and PASSPHRASE not in screen  # never echoed


def test_a_download_uses_the_passphrase_given_to_the_clusters_tab(
    qtbot, ssh_home: SshHome, locked_key: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Results' Download… opens its own connection: it borrows the passphrase the user typed for
    that cluster (memory only), and without one it stops at once with one line (no retries)."""
    from msquant_desktop.domain.jobs import JobKind, JobSpec, JobState, JobTarget
    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.store import JobRepository, connect

    bed = ssh_home.testbed
    remote = Path(tempfile.mkdtemp(prefix="locked-dl-", dir=bed.workspace))  # type: ignore[attr-defined]
    (remote / "model.safetensors").write_bytes(b"weights" * 1000)
    subprocess.run(["chown", "-R", bed.user, str(remote)], check=True)  # type: ignore[attr-defined]
    clusters = _locked_key_cluster(ssh_home, tmp_path)
    conn = connect(tmp_path / "db.sqlite3")
    repo = JobRepository(conn)
    spec = JobSpec(name="q", argv=("true",), kind=JobKind.QUANTIZE, target=JobTarget.SLURM, cluster="testbed")
    job = repo.create(spec, JobState.COMPLETED, "a quantization on the cluster, finished")
    repo.update(job.id, result={"output": str(remote)})
    service = ClusterService(conn, tmp_path / "runs", clusters, ssh_home.config)
    ended: list[tuple[int, str]] = []
    service.downloads.sig_finished.connect(lambda job_id, why: ended.append((job_id, why)))
    try:
        service.downloads.start(job.id, tmp_path / "here")
        qtbot.waitUntil(lambda: len(ended) == 1, timeout=30_000)
        assert ended[0][1].endswith("Test connection on the Clusters tab asks for it once for this session")
        assert "resuming" not in ended[0][1]
        service.provide_passphrase("testbed", PASSPHRASE)
        service.downloads.start(job.id, tmp_path / "here")
        qtbot.waitUntil(lambda: len(ended) == 2, timeout=30_000)
        assert ended[1] == (job.id, "")
        assert (tmp_path / "here" / "model.safetensors").read_bytes() == b"weights" * 1000
    finally:
        service.shutdown()
        shutil.rmtree(remote, ignore_errors=True)
