"""known_hosts as OpenSSH reads it: `@revoked` refuses a key even when it is also listed normally,
`@cert-authority` lines are never taken for host keys, host patterns match as in match_hostname.

Keys and hashed lines are made by OpenSSH's own ssh-keygen; `ssh-keygen -F` is the oracle for which
lines name a host, and (on the testbed) the real `ssh` client is the oracle for the verdicts."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from msquant_desktop.slurm.connection import (
    HostKeyChanged,
    HostKeyRevoked,
    UnknownHostKey,
    accept_host_key,
    host_matches,
    parse_known_hosts,
    verify_host_key,
)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")

# github.com's published host key (https://docs.github.com/en/authentication/keeping-your-account-and-
# data-secure/githubs-ssh-key-fingerprints: SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU)
GITHUB = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def keygen(directory: Path, name: str, kind: str = "ed25519") -> str:
    """`TYPE BASE64` of a fresh public key made by ssh-keygen."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", name, "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def pkey(public: str) -> paramiko.PKey:
    key_type, b64 = public.split()
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    return {name: keygen(tmp_path, name) for name in ("a", "b", "ca")} | {
        "ecdsa": keygen(tmp_path, "ecdsa", "ecdsa")
    }


def write(tmp_path: Path, *lines: str, name: str = "known_hosts") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_revoked_key_is_refused_even_when_also_listed(tmp_path: Path, keys: dict[str, str]) -> None:
    key = pkey(keys["a"])
    for lines in (
        (f"@revoked login.example.org {keys['a']}", f"login.example.org {keys['a']}"),
        (f"login.example.org {keys['a']}", f"@revoked * {keys['a']}"),
        (f"login.example.org {keys['a']}", f"@REVOKED login.*,other {keys['a']} revoked by admin"),
    ):
        path = write(tmp_path, "# comment", *lines)
        with pytest.raises(HostKeyRevoked, match="REVOKED") as refused:
            verify_host_key("login.example.org", key, path)
        assert isinstance(refused.value, HostKeyChanged)  # refused and never overwritten, like a change
        assert refused.value.line == next(i for i, line in enumerate(["# comment", *lines], 1) if "@" in line)
    # revoked for another host only: the plain line stands
    path = write(tmp_path, f"@revoked other.example.org {keys['a']}", f"login.example.org {keys['a']}")
    verify_host_key("login.example.org", key, path)
    # a revoked key is not offered for acceptance either
    path = write(tmp_path, f"@revoked * {keys['a']}")
    with pytest.raises(HostKeyRevoked):
        accept_host_key(path, "login.example.org", *keys["a"].split())
    assert path.read_text().count("\n") == 1


def test_a_cert_authority_line_is_not_a_host_key(tmp_path: Path, keys: dict[str, str]) -> None:
    key = pkey(keys["a"])
    path = write(
        tmp_path,
        GITHUB,
        f"@cert-authority *.example.org {keys['ca']}",
        f"@cert-authority login.example.org {keys['a']}",
    )
    with pytest.raises(UnknownHostKey) as unknown:
        verify_host_key("login.example.org", key, path)  # the CA line even holds this very key
    assert unknown.value.cert_authority_lines == (2, 3)
    assert "CA-signed host certificates are not supported" in str(unknown.value)
    # a CA line of the same key type never makes a key "changed"
    path = write(tmp_path, f"@cert-authority login.example.org {keys['ca']}")
    with pytest.raises(UnknownHostKey):
        verify_host_key("login.example.org", pkey(keys["b"]), path)


def test_plain_lines_with_patterns_ports_hashes_and_changes(tmp_path: Path, keys: dict[str, str]) -> None:
    a, b = pkey(keys["a"]), pkey(keys["b"])
    path = write(
        tmp_path,
        GITHUB,
        f"*.cluster.org,!bad.cluster.org {keys['a']}",
        f"[gw.farm.net]:2222 {keys['b']}",
        f"n?.farm.org {keys['ecdsa']}",
        "garbage",
        f"odd.org sk-ssh-ed25519@openssh.com {keys['a'].split()[1]}",
    )
    verify_host_key("n1.cluster.org", a, path)
    verify_host_key("[gw.farm.net]:2222", b, path)
    with pytest.raises(UnknownHostKey):
        verify_host_key("bad.cluster.org", a, path)  # the negation wins
    with pytest.raises(UnknownHostKey):
        verify_host_key("gw.farm.net", b, path)  # port 22 is not port 2222
    with pytest.raises(HostKeyChanged) as changed:
        verify_host_key("n2.cluster.org", b, path)
    assert changed.value.line == 2 and not isinstance(changed.value, HostKeyRevoked)
    verify_host_key("github.com", pkey(GITHUB.split(" ", 1)[1]), path)
    # lines hashed by ssh-keygen -H still verify
    path = write(tmp_path, GITHUB, f"[gw.farm.net]:2222 {keys['b']}")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    assert "|1|" in path.read_text()
    verify_host_key("[gw.farm.net]:2222", b, path)
    verify_host_key("github.com", pkey(GITHUB.split(" ", 1)[1]), path)


def test_user_and_global_files_are_read_as_one(tmp_path: Path, keys: dict[str, str]) -> None:
    """UserKnownHostsFile then GlobalKnownHostsFile, as ssh loads them into one set of lines."""
    a = pkey(keys["a"])
    user = write(tmp_path, f"login.example.org {keys['b']}", name="user_known_hosts")
    global_ = write(tmp_path, f"login.example.org {keys['a']}", name="ssh_known_hosts")
    verify_host_key("login.example.org", a, [user, global_])  # listed in one file: accepted
    with pytest.raises(HostKeyChanged) as changed:
        verify_host_key("login.example.org", a, [user])
    assert (changed.value.known_hosts, changed.value.line) == (user, 1)
    with pytest.raises(UnknownHostKey) as unknown:
        verify_host_key("other.example.org", a, [user, global_])
    assert unknown.value.known_hosts == user  # an accepted key goes to the first user file
    revoked = write(tmp_path, "# admins", f"@revoked * {keys['a']}", name="revoked_global")
    with pytest.raises(HostKeyRevoked) as refused:
        verify_host_key("login.example.org", a, [global_, revoked])  # revoked in any file wins
    assert (refused.value.known_hosts, refused.value.line) == (revoked, 2)
    ca = write(tmp_path, f"@cert-authority *.example.org {keys['ca']}", name="ca_global")
    with pytest.raises(UnknownHostKey) as unknown:
        verify_host_key("n1.example.org", a, [user, ca])
    assert unknown.value.cert_authority_lines == (1,) and str(ca) in str(unknown.value)


HOSTS = [
    "login.example.org",
    "n1.cluster.org",
    "bad.cluster.org",
    "[gw.cluster.org]:2222",
    "gw.cluster.org",
    "n7.farm.org",
    "n17.farm.org",
    "github.com",
    "GitHub.com",
]


def test_host_matching_agrees_with_ssh_keygen(tmp_path: Path, keys: dict[str, str]) -> None:
    lines = [
        GITHUB,
        f"*.cluster.org,!bad.cluster.org {keys['a']}",
        f"[gw.cluster.org]:2222 {keys['b']}",
        f"[gw.cluster.org]:* {keys['ecdsa']}",
        f"n?.farm.org {keys['ecdsa']}",
        f"@revoked login.* {keys['a']}",
        f"@cert-authority *.example.org,*.cluster.org {keys['ca']}",
        f"gw.cluster.org,login.example.org {keys['b']}",
    ]
    for hashed in (False, True):
        path = write(tmp_path, *lines)
        if hashed:
            subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
        parsed = parse_known_hosts(path.read_text())
        for host in HOSTS:
            out = subprocess.run(
                ["ssh-keygen", "-F", host, "-f", str(path)], capture_output=True, text=True
            ).stdout
            theirs = {int(n) for n in re.findall(r"found: line (\d+)", out)}
            ours = {line.number for line in parsed if host_matches(line.patterns, host)}
            assert ours == theirs, (host, hashed)


def test_verdicts_agree_with_the_openssh_client(testbed, tmp_path: Path, keys: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """The real ssh client against the testbed's sshd decides first; ours must decide the same."""
    label, host_key = testbed.host_label, testbed.host_key
    variants = {
        "plain": [f"{label} {host_key}"],
        "revoked and listed": [f"{label} {host_key}", f"@revoked {label} {host_key}"],
        "revoked by wildcard": [f"@revoked * {host_key}", f"{label} {host_key}"],
        "revoked elsewhere": [f"@revoked other.org {host_key}", f"{label} {host_key}"],
        "cert authority only": [f"@cert-authority * {keys['ca']}", f"@cert-authority {label} {host_key}"],
        "changed": [f"{label} {keys['b']}"],
        "pattern": [f"[127.0.0.*]:* {host_key}"],
        "negated": [f"[127.0.0.*]:*,!{label} {host_key}"],
    }
    server_key = pkey(host_key)
    for name, lines in variants.items():
        path = write(tmp_path, *lines, name=name.replace(" ", "_"))
        ssh = subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
            + ["-o", f"UserKnownHostsFile={path}", "-o", "GlobalKnownHostsFile=/dev/null"]
            + ["-o", "HostKeyAlgorithms=ssh-ed25519", "-i", testbed.key, "-p", str(testbed.port)]
            + [f"{testbed.user}@{testbed.host}", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        try:
            verify_host_key(label, server_key, path)
            ours = "accepted"
        except HostKeyRevoked:
            ours = "revoked"
        except HostKeyChanged:
            ours = "changed"
        except UnknownHostKey:
            ours = "unknown"
        if ssh.returncode == 0:
            theirs = "accepted"
        elif "REVOKED" in ssh.stderr or "revoked" in ssh.stderr:
            theirs = "revoked"
        elif "HAS CHANGED" in ssh.stderr:
            theirs = "changed"
        else:
            theirs = "unknown"
        assert ours == theirs, (name, ssh.stderr)
