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
- Where to connect comes from `slurm.ssh_config` (OpenSSH's own `ssh -G`, paramiko's parser as a
  fallback): a ProxyJump chain is a chain of connections, each hop's transport running over a
  direct-tcpip channel of the previous one and verified against its own known_hosts files; a
  ProxyCommand's stdin/stdout is the socket.  Authentication tries the agent first, then key files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import select
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeys

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.ssh_config import Resolver, SshConfigError, SshTarget, is_default_identity

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
        cert_authority_file: Path | None = None,
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
                f" (line {numbers} of {cert_authority_file or known_hosts} trusts a certificate authority for this host, but "
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

    def __init__(self, line: str, key_path: str = "") -> None:
        super().__init__(line)
        self.key_path = key_path
        """The locked key file ("" when not known), for a prompt that names it as ssh does."""


HOST_KEY_PROBLEMS: tuple[type[SshError], ...] = (HostKeyChanged, HostKeyRevoked, UnknownHostKey)
"""Connection failures that wait for the user (never retried on a timer)."""

NEEDS_THE_USER: tuple[type[SshError], ...] = (*HOST_KEY_PROBLEMS, PassphraseRequired)
"""Failures no reconnect can mend: a host key to confirm or a key to unlock."""


def fingerprint_sha256(key: paramiko.PKey) -> str:
    """`SHA256:...` as OpenSSH prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def resolve_target(
    host: str,
    port: int | None = None,
    key_path: str | None = None,
    known_hosts: str | None = None,
    ssh_config: Path | None = None,
) -> SshTarget:
    """`user@alias` resolved as OpenSSH resolves it (`slurm.ssh_config`); profile values win."""
    try:
        return Resolver(ssh_config).target(host, port, key_path, known_hosts)
    except SshConfigError as exc:
        raise SshError(str(exc)) from exc


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


def verify_host_key(label: str, key: paramiko.PKey, known_hosts: Path | Sequence[Path]) -> None:
    """Raise unless `key` is recorded for `label` in the known_hosts file(s), with OpenSSH's semantics.

    Several files (UserKnownHostsFile then GlobalKnownHostsFile) are read as one, as ssh reads them:
    - A key on an `@revoked` line for this host, in any file, is refused even if it is also listed
      normally (`HostKeyRevoked`), as ssh(1) refuses it.
    - `@cert-authority` lines hold a CA's key, never the host's: they do not vouch for a plain key.
      paramiko does not negotiate host certificates, so a CA-signed host cannot be verified through
      them; the error for an unknown key says so, naming those lines.
    - The key on a plain line for this host in any file: accepted.  Else a plain line with the same
      key type but another key: `HostKeyChanged`.  Else `UnknownHostKey`, to be saved to the first file.
    """
    files = [known_hosts] if isinstance(known_hosts, Path) else list(known_hosts)
    read = [(path, _read_known_hosts(path)) for path in files]
    blob = key.asbytes()
    for path, lines in read:
        revoked = _revoked_line(lines, label, blob)
        if revoked is not None:
            raise HostKeyRevoked(label, key, path, revoked)
    changed: tuple[Path, int] | None = None
    for path, lines in read:
        for line in lines:
            if line.marker is not None or not host_matches(line.patterns, label):
                continue
            if line.key == blob:
                return
            if line.key_type == key.get_name() and changed is None:
                changed = (path, line.number)
    if changed is not None:
        raise HostKeyChanged(label, key, *changed)
    for path, lines in read:
        ca_lines = tuple(
            line.number
            for line in lines
            if line.marker == "@cert-authority" and host_matches(line.patterns, label)
        )
        if ca_lines:
            raise UnknownHostKey(label, key, files[0], ca_lines, path)
    raise UnknownHostKey(label, key, files[0])


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
        raise PassphraseRequired(f"the key {path} is encrypted: a passphrase is needed", path) from exc
    except ValueError as exc:
        if passphrase:
            raise PassphraseRequired(f"the passphrase for {path} was not accepted", path) from exc
        raise SshError(f"cannot read the SSH key {path}: {exc}") from exc
    except (OSError, paramiko.SSHException) as exc:
        raise SshError(f"cannot read the SSH key {path}: {exc}") from exc


def _public_blob(path: str) -> bytes | None:
    """The public key next to a private key file (`PATH.pub`), read without unlocking anything."""
    try:
        fields = Path(path + ".pub").read_text(encoding="utf-8").split()
        return base64.b64decode(fields[1], validate=True) if len(fields) >= 2 else None
    except (OSError, ValueError, binascii.Error):
        return None


class ProxyProcess(paramiko.ProxyCommand):
    """A ProxyCommand run as ssh runs it (`$SHELL -c "exec COMMAND"`), its stdin/stdout the socket.

    WORKAROUND for paramiko.ProxyCommand: its stderr is a pipe nobody reads (a chatty proxy, such as
    `ssh -v -W`, fills it and stalls the connection), its recv() spins on a proxy that has exited
    (EOF reads as "no data yet"), and close() never reaps the child.  Here stderr goes to a
    temporary file (its last line explains a failure), EOF is EOF, and close() waits for the child.
    """

    def __init__(self, command: str) -> None:  # no super().__init__: it would start the pipe version
        shell = os.environ.get("SHELL") or "/bin/sh"
        self.cmd = [shell, "-c", f"exec {command}"]
        self._stderr = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0
            )
        except OSError:
            self._stderr.close()
            raise
        self.timeout = None
        self._eof = False

    def recv(self, size: int) -> bytes:
        """What the proxy wrote, as a socket would; EOFError once it closed its output."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError()
        data = os.read(stdout.fileno(), size)
        if not data:
            self._eof = True
            raise EOFError()  # as a closed socket: the caller adds what the proxy said (said())
        return data

    def said(self) -> str:
        """` (the ProxyCommand exited N: last stderr line)` once it has exited, else "".  Only asked
        after a failure, so it may wait a moment for a proxy that is exiting."""
        try:
            self.process.wait(1)
        except subprocess.TimeoutExpired:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read()[-4000:].decode("utf-8", errors="replace").strip().splitlines()
        return f" (the ProxyCommand exited {self.process.returncode}" + (f": {lines[-1]})" if lines else ")")

    def close(self) -> None:
        if self._eof:  # it closed its output: let it exit by itself, so that its status is its own
            try:
                self.process.wait(1)
            except subprocess.TimeoutExpired:
                pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        # stderr stays readable (said()) until this object goes: the transport closes it first.


def _proxy_stderr(sock: object) -> str:
    """What a ProxyCommand that already ended wrote on stderr (the reason the connection failed)."""
    if isinstance(sock, ProxyProcess):
        return sock.said()
    return ""


def _open_agent(identity_agent: str | None) -> paramiko.Agent | None:
    """The agent at $SSH_AUTH_SOCK or at IdentityAgent's socket; None with `IdentityAgent none`."""
    if identity_agent == "none":
        return None
    try:
        if identity_agent is None:
            return paramiko.Agent()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(identity_agent)
        # WORKAROUND: paramiko.Agent only reads $SSH_AUTH_SOCK; AgentSSH._connect takes any socket.
        agent = paramiko.Agent.__new__(paramiko.Agent)
        paramiko.agent.AgentSSH.__init__(agent)
        agent._connect(sock)  # type: ignore[attr-defined]
        return agent
    except (paramiko.SSHException, OSError) as exc:
        log.debug("no SSH agent (%s): %s", identity_agent or "SSH_AUTH_SOCK", exc)
        return None


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
        try:
            self._transport = self._handshake(self._open_socket())
        except BaseException:
            if self._jump is not None:  # the hops before this one are of no use now
                self._jump.close()
                self._jump = None
            raise
        return time.perf_counter() - started

    def _handshake(
        self, sock: socket.socket | paramiko.Channel | paramiko.ProxyCommand
    ) -> paramiko.Transport:
        transport = paramiko.Transport(sock)
        transport.set_keepalive(KEEPALIVE_S)
        self._pending = transport
        if self._aborted:  # abort() came before it could see this transport (set before this check)
            self._pending = None
            sock.close()
            raise SshError(f"connection to {self.target.label} given up")
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT_S)
            # Every hop is verified against its own known_hosts files before anything is sent to it.
            verify_host_key(self.target.label, transport.get_remote_server_key(), self.target.lookup_files)
            self._authenticate(transport)
        except SshError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            said = _proxy_stderr(sock)
            transport.close()
            if self._aborted:
                raise SshError(f"connection to {self.target.label} given up") from exc
            raise SshError(f"SSH to {self.target.label} failed: {exc}{said}") from exc
        finally:
            self._pending = None
        return transport

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

    def _open_socket(self) -> socket.socket | paramiko.Channel | paramiko.ProxyCommand:
        """TCP, a ProxyCommand, or a channel through the previous hop (verified like any host)."""
        target = self.target
        if target.via is not None:
            self._jump = SshConnection(target.via, self._passphrase)
            if self._aborted:
                raise SshError(f"connection to {target.label} given up")
            self._jump.connect()
            assert self._jump._transport is not None
            try:
                return self._jump._transport.open_channel(
                    "direct-tcpip",
                    (target.hostname, target.port),
                    ("127.0.0.1", 0),
                    timeout=CONNECT_TIMEOUT_S,
                )
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise SshError(f"jump host {target.via.label} cannot reach {target.label}: {exc}") from exc
        if target.proxy_command:
            try:
                return ProxyProcess(target.proxy_command)
            except OSError as exc:
                raise SshError(f"cannot start the ProxyCommand for {target.label}: {exc}") from exc
        try:
            sock = socket.create_connection((target.hostname, target.port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise SshError(f"cannot reach {target.label}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def _authenticate(self, transport: paramiko.Transport) -> None:
        """Keys in ssh's order (sshconnect2.c, pubkey_prepare): the agent's copies of the configured
        keys, then the agent's other keys (none under IdentitiesOnly), then the configured files.
        So an agent full of other keys cannot use up the server's MaxAuthTries (6 by default) before
        the configured key is offered; an encrypted file whose key the agent holds is never
        unlocked, and a passphrase is asked only when no other key was accepted."""
        target = self.target
        errors: list[str] = []
        offered: set[bytes] = set()
        files = [path for path in target.key_files if os.path.exists(path)]
        errors += [
            f"{path}: no such file"
            for path in target.key_files
            if not os.path.exists(path) and not is_default_identity(path)
        ]
        wanted = {blob for blob in map(_public_blob, files) if blob is not None}
        agent = _open_agent(target.identity_agent)
        try:
            agent_keys = list(agent.get_keys()) if agent is not None else []
            agent_keys.sort(key=lambda k: k.asbytes() not in wanted)  # stable: agent order within each
            for agent_key in agent_keys:
                blob = agent_key.asbytes()
                if target.identities_only and blob not in wanted:
                    continue  # IdentitiesOnly: only the agent's copies of the configured keys
                offered.add(blob)
                try:
                    transport.auth_publickey(target.user, agent_key)
                    return
                except paramiko.AuthenticationException:
                    continue
        except paramiko.SSHException as exc:
            log.debug("the SSH agent failed: %s", exc)
        finally:
            if agent is not None:
                agent.close()
        locked: PassphraseRequired | None = None
        for path in files:
            if _public_blob(path) in offered:
                continue  # the agent offered this very key already
            try:
                key = _load_key(path, self._passphrase or stored_passphrase(path))
            except PassphraseRequired as exc:
                locked = locked or exc
                continue
            except SshError as exc:  # a key paramiko cannot read (a security key, say): try the next
                errors.append(str(exc))
                continue
            if key.asbytes() in offered:
                continue
            offered.add(key.asbytes())
            try:
                transport.auth_publickey(target.user, key)
                return
            except paramiko.AuthenticationException as exc:
                errors.append(f"{path}: {exc}")
        if locked is not None:
            raise locked
        detail = "; ".join(errors) or "no key file found and no agent key accepted"
        raise SshError(f"{target.user}@{target.label} refused our keys ({detail})")

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
