"""One persistent, verified SSH connection to a cluster (paramiko).

- The socket is ours (TCP_NODELAY: ~10 ms per command instead of ~60 ms, facts/slurm-testbed.md) and
  is handed to paramiko; keepalive keeps NAT boxes from dropping an idle connection.
- Host keys are checked against known_hosts with RejectPolicy semantics, but by hand so the errors can
  carry what the UI needs: an unknown key raises `UnknownHostKey` with its SHA256 fingerprint (the UI
  asks, and `accept_host_key` saves it); a changed key raises `HostKeyChanged` naming the file and
  line; a key on an `@revoked` line raises `HostKeyRevoked` (a `HostKeyChanged`: never accepted).
  Host patterns follow OpenSSH (`*`, `?`, `!negation`, `[host]:port`, hashed `|1|` names);
  `@cert-authority` lines are never taken for host keys (host certificates are not supported).
  Nothing is ever added silently: a key is saved only after the user accepts it.
- `~/.ssh/config` aliases are resolved with paramiko.SSHConfig (HostName, User, Port, IdentityFile,
  ProxyJump).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import logging
import os
import re
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeys

from msquant_desktop.domain.slurm import ClusterProfile

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 15


class SshError(RuntimeError):
    """The cluster cannot be reached or refused us; the message says why."""


class CommandNotSent(SshError):
    """The connection failed before a command was sent: it certainly did not run."""


class UnknownHostKey(SshError):
    """The server's key is not in known_hosts.  Carries what the user must see before accepting.

    `cert_authority_lines` are the `@cert-authority` lines that name this host: they trust a CA, and
    CA-signed host certificates cannot be verified here (paramiko does not negotiate them).
    """

    def __init__(
        self,
        host_label: str,
        key: paramiko.PKey,
        known_hosts: Path,
        cert_authority_lines: tuple[int, ...] = (),
    ) -> None:
        self.host_label = host_label
        self.key = key
        self.known_hosts = known_hosts
        self.fingerprint = fingerprint_sha256(key)
        self.cert_authority_lines = cert_authority_lines
        note = ""
        if cert_authority_lines:
            numbers = ", ".join(map(str, cert_authority_lines))
            note = (
                f" (line {numbers} of {known_hosts} trusts a certificate authority for this host, but "
                "CA-signed host certificates are not supported here: only the host's own key can be checked)"
            )
        super().__init__(
            f"the host key of {host_label} is not known ({key.get_name()} {self.fingerprint}); "
            f"accept it to add it to {known_hosts}{note}"
        )


class HostKeyChanged(SshError):
    """The server's key differs from the one recorded: refused, never overwritten by us."""

    def __init__(self, host_label: str, key: paramiko.PKey, known_hosts: Path, line: int) -> None:
        self.host_label = host_label
        self.fingerprint = fingerprint_sha256(key)
        self.known_hosts = known_hosts
        self.line = line
        super().__init__(
            f"WARNING: the host key of {host_label} has CHANGED (now {key.get_name()} {self.fingerprint}); "
            f"refusing to connect. If the change is expected, remove line {line} of {known_hosts}"
        )


class HostKeyRevoked(HostKeyChanged):
    """The server's key is marked `@revoked` for this host: refused like a changed key, and never
    accepted (a plain line for the same key does not override the revocation, as in OpenSSH)."""

    def __init__(self, host_label: str, key: paramiko.PKey, known_hosts: Path, line: int) -> None:
        SshError.__init__(
            self,
            f"WARNING: the host key of {host_label} ({key.get_name()} {fingerprint_sha256(key)}) is REVOKED: "
            f"line {line} of {known_hosts} marks it @revoked. Refusing to connect, as for a CHANGED key; "
            "it can never be accepted. Ask the cluster's administrators for the host's current key",
        )
        self.host_label = host_label
        self.fingerprint = fingerprint_sha256(key)
        self.known_hosts = known_hosts
        self.line = line


class PassphraseRequired(SshError):
    """The private key is encrypted: ask the user (or the keyring) and connect again with it."""


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """`SHA256:...` as OpenSSH prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class SshTarget:
    """Where to connect after `~/.ssh/config` was applied."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())

    @property
    def label(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve_target(
    host: str,
    port: int | None = None,
    key_path: str | None = None,
    known_hosts: str | None = None,
    ssh_config: Path | None = None,
) -> SshTarget:
    """`user@alias:` resolved through ssh config; explicit profile values win over the config."""
    user = None
    alias = host
    if "@" in host:
        user, alias = host.rsplit("@", 1)
    config_path = ssh_config or Path("~/.ssh/config").expanduser()
    looked: dict[str, object] = {}
    if config_path.is_file():
        cfg = paramiko.SSHConfig.from_path(str(config_path))
        looked = dict(cfg.lookup(alias))
    hostname = str(looked.get("hostname", alias))
    resolved_user = user or str(looked.get("user") or getpass.getuser())
    resolved_port = port or int(str(looked.get("port", 22)))
    keys: list[str] = []
    if key_path:
        keys.append(os.path.expanduser(key_path))
    identities = looked.get("identityfile") or []
    for identity in identities if isinstance(identities, list) else [identities]:
        keys.append(os.path.expanduser(str(identity)))
    jump = looked.get("proxyjump")
    return SshTarget(
        hostname=hostname,
        port=resolved_port,
        user=resolved_user,
        key_files=tuple(dict.fromkeys(keys)),
        proxy_jump=str(jump) if jump and str(jump).lower() != "none" else None,
        known_hosts=Path(os.path.expanduser(known_hosts or "~/.ssh/known_hosts")),
    )


def target_for_profile(profile: ClusterProfile, ssh_config: Path | None = None) -> SshTarget:
    return resolve_target(profile.host, profile.port, profile.ssh_key_path, profile.known_hosts, ssh_config)


@dataclass(frozen=True)
class KnownHostLine:
    """One line of a known_hosts file (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").

    `marker` is "@revoked", "@cert-authority" or None (a plain host key); `key` is the decoded public
    key blob, None when the base64 is unreadable.
    """

    number: int
    marker: str | None
    patterns: str
    key_type: str
    key: bytes | None


def parse_known_hosts(text: str) -> list[KnownHostLine]:
    """Every host-key line; comments, blank and malformed lines are left out (as OpenSSH does)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0].lower(), fields[1:]
        if len(fields) < 3:
            continue
        try:
            blob: bytes | None = base64.b64decode(fields[2], validate=True)
        except (ValueError, binascii.Error):
            blob = None
        out.append(KnownHostLine(number, marker, fields[0], fields[1], blob))
    return out


def _pattern_matches(pattern: str, name: str) -> bool:
    """OpenSSH's match_pattern: `*` and `?` wildcards, nothing else special (brackets are literal)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower())
    return re.fullmatch(regex, name.lower()) is not None


def host_matches(patterns: str, label: str) -> bool:
    """Whether a known_hosts host field names `label` (`host`, or `[host]:port` off port 22).

    As OpenSSH's match_hostname: a comma-separated list where any `!pattern` that matches wins
    (no match), else any positive pattern matching is a match; `|1|salt|hash` entries are compared
    by HMAC-SHA1 of the label.
    """
    matched = False
    for pattern in patterns.split(","):
        if not pattern:
            continue
        if pattern.startswith("|1|"):
            if HostKeys.hash_host(label, pattern) == pattern:
                matched = True
            continue
        negated = pattern.startswith("!")
        if _pattern_matches(pattern[1:] if negated else pattern, label):
            if negated:
                return False
            matched = True
    return matched


def _read_known_hosts(known_hosts: Path) -> list[KnownHostLine]:
    try:
        return parse_known_hosts(known_hosts.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []


def _revoked_line(lines: list[KnownHostLine], label: str, key_blob: bytes) -> int | None:
    for line in lines:
        if line.marker == "@revoked" and line.key == key_blob and host_matches(line.patterns, label):
            return line.number
    return None


def verify_host_key(label: str, key: paramiko.PKey, known_hosts: Path) -> None:
    """Raise unless `key` is recorded for `label` in `known_hosts`, with OpenSSH's semantics.

    - A key on an `@revoked` line for this host is refused even if it is also listed normally
      (`HostKeyRevoked`), as ssh(1) refuses it.
    - `@cert-authority` lines hold a CA's key, never the host's: they do not vouch for a plain key.
      paramiko does not negotiate host certificates, so a CA-signed host cannot be verified through
      them; the error for an unknown key says so, naming those lines.
    - A plain line for this host with the same key type but another key: `HostKeyChanged`.
    """
    lines = _read_known_hosts(known_hosts)
    blob = key.asbytes()
    revoked = _revoked_line(lines, label, blob)
    if revoked is not None:
        raise HostKeyRevoked(label, key, known_hosts, revoked)
    same_type_line: int | None = None
    for line in lines:
        if line.marker is not None or not host_matches(line.patterns, label):
            continue
        if line.key == blob:
            return
        if line.key_type == key.get_name() and same_type_line is None:
            same_type_line = line.number
    if same_type_line is not None:
        raise HostKeyChanged(label, key, known_hosts, same_type_line)
    ca_lines = tuple(
        line.number
        for line in lines
        if line.marker == "@cert-authority" and host_matches(line.patterns, label)
    )
    raise UnknownHostKey(label, key, known_hosts, ca_lines)


def accept_host_key(known_hosts: Path, label: str, key_type: str, key_base64: str) -> None:
    """Append an accepted key (the user saw its fingerprint and said yes); a revoked key is refused."""
    blob = base64.b64decode(key_base64)
    revoked = _revoked_line(_read_known_hosts(known_hosts), label, blob)
    if revoked is not None:
        raise HostKeyRevoked(label, paramiko.PKey.from_type_string(key_type, blob), known_hosts, revoked)
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with known_hosts.open("a", encoding="utf-8") as fh:
        fh.write(f"{label} {key_type} {key_base64}\n")


KEYRING_SERVICE = "msquant-desktop"


def stored_passphrase(key_path: str) -> str | None:
    """A key's passphrase from the system keyring (`keyring set msquant-desktop ssh-key:PATH`), if any.

    No keyring backend is a normal situation, not an error: it just means "ask the user".
    """
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, f"ssh-key:{key_path}")
    except Exception as exc:  # keyring raises backend-specific errors; all mean "not available"
        log.debug("no keyring for %s: %s", key_path, exc)
        return None


def _load_key(path: str, passphrase: str | None) -> paramiko.PKey:
    try:
        # WORKAROUND: paramiko annotates the password as str, but cryptography needs bytes for
        # OpenSSH-format keys ("password must be bytes").
        secret = passphrase.encode("utf-8") if passphrase else None
        return paramiko.PKey.from_path(path, secret)  # type: ignore[arg-type]
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # TypeError: cryptography's way of saying "encrypted, no password given" for OpenSSH keys.
        raise PassphraseRequired(f"the key {path} is encrypted: a passphrase is needed") from exc
    except ValueError as exc:
        if passphrase:
            raise PassphraseRequired(f"the passphrase for {path} was not accepted") from exc
        raise SshError(f"cannot read the SSH key {path}: {exc}") from exc
    except (OSError, paramiko.SSHException) as exc:
        raise SshError(f"cannot read the SSH key {path}: {exc}") from exc


@dataclass
class CommandResult:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", errors="replace").strip()


class SshConnection:
    """A verified, persistent connection: run commands, read and write files over one SFTP session.

    Not thread-safe by design: one worker thread per cluster owns it.
    """

    def __init__(self, target: SshTarget, passphrase: str | None = None) -> None:
        self.target = target
        self._passphrase = passphrase
        self._transport: paramiko.Transport | None = None
        self._jump: SshConnection | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self._pending: paramiko.Transport | None = None  # a transport still negotiating
        self._aborted = False

    # -- life ---------------------------------------------------------------------------------------
    def connect(self) -> float:
        """Open and verify; returns the seconds it took.  Raises SshError (or a subclass)."""
        started = time.perf_counter()
        sock = self._open_socket()
        transport = paramiko.Transport(sock)
        transport.set_keepalive(KEEPALIVE_S)
        self._pending = transport
        if self._aborted:  # abort() came before it could see this transport (set before this check)
            self._pending = None
            sock.close()
            raise SshError(f"connection to {self.target.label} given up")
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT_S)
            verify_host_key(self.target.label, transport.get_remote_server_key(), self.target.known_hosts)
            self._authenticate(transport)
        except SshError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            if self._aborted:
                raise SshError(f"connection to {self.target.label} given up") from exc
            raise SshError(f"SSH to {self.target.label} failed: {exc}") from exc
        finally:
            self._pending = None
        self._transport = transport
        return time.perf_counter() - started

    def abort(self) -> None:
        """Give up from another thread: a connect in progress fails within ~0.1 s, a command fails.

        A server that accepts and never sends its banner would otherwise hold the connecting thread
        for CONNECT_TIMEOUT_S.  Only a TCP connect or a DNS lookup still running is not cut short
        (both end by their own timeouts).  The owner still calls `close()`.
        """
        self._aborted = True
        for transport in (self._pending, self._transport):
            if transport is not None:
                transport.close()  # wakes start_client/auth waits and channel reads at once
        jump = self._jump
        if jump is not None:
            jump.abort()

    def _open_socket(self) -> socket.socket | paramiko.Channel:
        if self.target.proxy_jump:
            jump_target = resolve_target(
                self.target.proxy_jump.split(",")[0], known_hosts=str(self.target.known_hosts)
            )
            self._jump = SshConnection(jump_target, self._passphrase)
            if self._aborted:
                raise SshError(f"connection to {self.target.label} given up")
            self._jump.connect()
            assert self._jump._transport is not None
            try:
                return self._jump._transport.open_channel(
                    "direct-tcpip", (self.target.hostname, self.target.port), ("127.0.0.1", 0)
                )
            except paramiko.SSHException as exc:
                raise SshError(
                    f"jump host {self.target.proxy_jump} cannot reach {self.target.label}: {exc}"
                ) from exc
        try:
            sock = socket.create_connection(
                (self.target.hostname, self.target.port), timeout=CONNECT_TIMEOUT_S
            )
        except OSError as exc:
            raise SshError(f"cannot reach {self.target.label}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def _authenticate(self, transport: paramiko.Transport) -> None:
        errors: list[str] = []
        for path in self.target.key_files:
            if not os.path.exists(path):
                errors.append(f"{path}: no such file")
                continue
            key = _load_key(path, self._passphrase or stored_passphrase(path))
            try:
                transport.auth_publickey(self.target.user, key)
                return
            except paramiko.AuthenticationException as exc:
                errors.append(f"{path}: {exc}")
        try:
            for agent_key in paramiko.Agent().get_keys():
                try:
                    transport.auth_publickey(self.target.user, agent_key)
                    return
                except paramiko.AuthenticationException:
                    continue
        except paramiko.SSHException:
            pass
        detail = "; ".join(errors) or "no key file given and no agent key accepted"
        raise SshError(f"{self.target.user}@{self.target.label} refused our keys ({detail})")

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:
                pass
            self._sftp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def drop(self) -> None:
        """Cut the socket under the connection, as a network failure would (tests use it).

        Safe from another thread: only the socket is closed; the owner notices on its next command.
        """
        transport = self._transport
        if transport is not None:
            transport.sock.close()

    # -- commands -----------------------------------------------------------------------------------
    def _require(self) -> paramiko.Transport:
        if not self.is_open or self._transport is None:
            raise SshError(f"not connected to {self.target.label}")
        return self._transport

    def run(self, argv: list[str] | str, timeout: float = 30.0, stdin: bytes | None = None) -> CommandResult:
        """Run a command; a list is quoted word by word (nothing reaches the remote shell unquoted).

        Raises CommandNotSent when the connection failed before the command was sent (it did not
        run), SshError when it failed after (the command may have run).
        """
        command = argv if isinstance(argv, str) else shlex.join(argv)
        try:
            transport = self._require()
            channel = transport.open_session(timeout=timeout)
        except SshError as exc:
            raise CommandNotSent(str(exc)) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # No channel, so the exec request was never written: the command did not run.
            self.close()
            raise CommandNotSent(
                f"connection to {self.target.label} lost before the command was sent: {exc}"
            ) from exc
        try:
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
                channel.shutdown_write()
            # stdout to EOF, then stderr: our commands print little on stderr, and a blocking recv()
            # wakes the moment data arrives (no polling latency).
            out = bytearray()
            while chunk := channel.recv(65536):
                out += chunk
            err = bytearray()
            while chunk := channel.recv_stderr(65536):
                err += chunk
            rc = channel.recv_exit_status()
            channel.close()
            if rc == -1 and not transport.is_active():
                # The channel ended without an exit status: the connection died mid-command, so the
                # caller cannot know whether the command ran (submit reconciles by job name).
                raise EOFError("connection closed before the command's exit status arrived")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise SshError(f"connection to {self.target.label} lost: {exc}") from exc
        return CommandResult(rc, bytes(out), bytes(err))

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(self._require())
            except (paramiko.SSHException, OSError) as exc:
                self.close()
                raise SshError(f"SFTP to {self.target.label} failed: {exc}") from exc
            assert self._sftp is not None
        return self._sftp

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a private file (created with `mode` before any byte is written)."""
        sftp = self.sftp()
        try:
            with sftp.open(path, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(f"cannot write {path} on {self.target.label}: {exc}") from exc

    def read_from(self, path: str, offset: int, limit: int = 1 << 20) -> bytes | None:
        """Bytes of `path` from `offset` (at most `limit`); None when the file does not exist yet."""
        sftp = self.sftp()
        try:
            with sftp.open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(f"cannot read {path} on {self.target.label}: {exc}") from exc

    def mkdir_private(self, path: str) -> None:
        result = self.run(["mkdir", "-p", "-m", "700", path])
        if result.rc != 0:
            raise SshError(f"cannot create {path} on {self.target.label}: {result.err}")
