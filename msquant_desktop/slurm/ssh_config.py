"""Where an SSH destination really is, as OpenSSH reads the user's config.  The one owner of that rule.

- OpenSSH installed: `ssh -G [-F FILE] [-l USER] [-p PORT] [-i KEY] DEST` prints the options ssh itself
  would use (Include, Host and Match blocks, first value wins, defaults such as the default identity
  files and known_hosts files); we parse that output (`parse_ssh_g`) and nothing else.
- No OpenSSH: paramiko's parser as a fallback, with OpenSSH's defaults filled in; it does not follow
  `Include`.  `SshTarget.resolved_by` says which one was used, and the UI shows it.
- `ProxyJump a,b` becomes a chain of targets (`SshTarget.via`): `a` keeps its own route from the config,
  `b` is reached through `a` and the destination through `b`, as `ssh -J a,b` does (ssh runs
  `ssh -J a -W %h:%p b`, so `b`'s own ProxyJump is overridden).  Every hop has its own known_hosts
  files and identities.  `ProxyCommand` is kept with its `%` tokens expanded here.
- `~` means `$HOME`.  ssh expands `~` in known_hosts paths with the passwd home directory; when `$HOME`
  differs (a sandbox, the tests) such paths are moved under `$HOME`, as the `~` in the config meant.
  `Include ~/...` and relative Includes are still found by ssh itself, under the passwd home.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

import paramiko

SSH_G_TIMEOUT_S = 10.0
MAX_HOPS = 8
"""More jump hosts than this is taken for a loop in the config (`Host *` with a ProxyJump, say)."""
DEFAULT_IDENTITIES = ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa")
"""ssh_config(5): tried when no IdentityFile is given.  A missing one is skipped without a word."""


class SshConfigError(RuntimeError):
    """The config cannot be resolved (ssh -G refused it, a ProxyJump loop, a bad token); one line."""


@dataclass(frozen=True)
class SshTarget:
    """Where to connect after the ssh config was applied; `via` is the previous hop of a ProxyJump."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    """Where an accepted key is saved (the first UserKnownHostsFile)."""
    known_hosts_files: tuple[Path, ...] = ()
    """Every file a key is looked up in (user files, then global ones); empty: `known_hosts` only."""
    via: SshTarget | None = None
    proxy_command: str | None = None
    """The ProxyCommand with its tokens expanded, run through the user's shell as ssh runs it."""
    host_key_alias: str | None = None
    identities_only: bool = False
    identity_agent: str | None = None
    """None: $SSH_AUTH_SOCK; "none": no agent; else the agent's socket path."""
    resolved_by: str = ""
    alias: str = ""

    @property
    def label(self) -> str:
        """The name the host key is recorded under in known_hosts (HostKeyAlias wins, as in ssh)."""
        name = self.host_key_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"

    @property
    def lookup_files(self) -> tuple[Path, ...]:
        return self.known_hosts_files or (self.known_hosts,)

    @property
    def route(self) -> tuple[str, ...]:
        """Every hop from the first, ending with this host (`user@host:port` each)."""
        hop = f"{self.user}@{self.hostname}:{self.port}"
        return (self.via.route if self.via is not None else ()) + (hop,)

    def describe(self) -> str:
        """One line for the UI: the route and which parser resolved it."""
        route = " → ".join(self.route)
        if self.proxy_command:
            route = f"{route} (through ProxyCommand)"
        return f"{route}; ssh config read by {self.resolved_by}" if self.resolved_by else route


# -- ssh -G output ---------------------------------------------------------------------------------


def parse_ssh_g(text: str) -> dict[str, list[str]]:
    """`ssh -G` output: one `keyword value` per line, keywords lower case, repeated ones collected.

    OpenSSH prints multi-valued options (identityfile, sendenv, ...) once per value, and file lists
    (userknownhostsfile, globalknownhostsfile) on one line separated by spaces.
    """
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if parts:
            options.setdefault(parts[0].lower(), []).append(parts[1] if len(parts) > 1 else "")
    return options


def _first(options: dict[str, list[str]], key: str) -> str | None:
    values = options.get(key)
    return values[0] if values else None


def _home() -> str:
    return os.path.expanduser("~")


def _passwd_home() -> str | None:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except (KeyError, OSError):
        return None


def expand_home(path: str) -> str:
    """`~` as `$HOME`, and a path ssh already expanded under the passwd home moved under `$HOME`."""
    if path.startswith("~"):
        return os.path.expanduser(path)
    home, passwd_home = _home(), _passwd_home()
    if passwd_home and home != passwd_home and path.startswith(passwd_home.rstrip("/") + "/"):
        return home.rstrip("/") + path[len(passwd_home.rstrip("/")) :]
    return path


@dataclass(frozen=True)
class HostOptions:
    """The options of one host that the connection needs, from either parser."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    identities_only: bool
    identity_agent: str | None
    proxy_jump: tuple[str, ...]
    proxy_command: str | None
    """Still with its `%` tokens."""
    user_known_hosts: tuple[Path, ...]
    global_known_hosts: tuple[Path, ...]
    host_key_alias: str | None
    alias: str


def options_from_ssh_g(options: dict[str, list[str]], alias: str) -> HostOptions:
    """The connection's options from parsed `ssh -G` output (`alias`: the name asked for)."""
    jump = _first(options, "proxyjump")
    command = _first(options, "proxycommand")
    agent = _first(options, "identityagent")
    parsed = HostOptions(
        hostname=_first(options, "hostname") or alias,
        port=int(_first(options, "port") or 22),
        user=_first(options, "user") or getpass.getuser(),
        identity_files=(),
        identities_only=(_first(options, "identitiesonly") or "no").lower() in ("yes", "true"),
        identity_agent=None if agent is None or agent == "SSH_AUTH_SOCK" else expand_home(agent),
        proxy_jump=tuple(h for h in (jump or "").split(",") if h) if jump and jump != "none" else (),
        proxy_command=command if command and command != "none" else None,
        user_known_hosts=tuple(
            Path(expand_home(p)) for p in (_first(options, "userknownhostsfile") or "").split()
        ),
        global_known_hosts=tuple(
            Path(expand_home(p)) for p in (_first(options, "globalknownhostsfile") or "").split()
        ),
        host_key_alias=_first(options, "hostkeyalias"),
        alias=alias,
    )
    # ssh -G prints IdentityFile as written: its tokens (`%h`, `%r`, ...) are expanded when used.
    files = tuple(
        expand_home(expand_tokens(p, parsed, "IdentityFile")) for p in options.get("identityfile", [])
    )
    return replace(parsed, identity_files=files)


# -- the two parsers --------------------------------------------------------------------------------


def _config_args(ssh_config: Path | None) -> list[str]:
    """`-F` as needed: none when the file is the one ssh reads anyway (then /etc/ssh/ssh_config is
    read too, as a plain `ssh` does); `-F none` for a file that does not exist."""
    home_config = Path(_home()) / ".ssh" / "config"
    path = ssh_config or home_config
    passwd_home = _passwd_home()
    if ssh_config is None and passwd_home and Path(passwd_home) / ".ssh" / "config" == home_config:
        return []
    return ["-F", str(path) if path.is_file() else "none"]


@functools.lru_cache(maxsize=8)
def openssh_version(ssh: str) -> str | None:
    """`OpenSSH_9.2p1` from `ssh -V` (asked once per binary); None when it is not OpenSSH's client
    (Dropbear's, say: no `-G`), so that paramiko's parser is used instead."""
    try:
        proc = subprocess.run(
            [ssh, "-V"], capture_output=True, text=True, timeout=SSH_G_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = (proc.stderr or proc.stdout).split()
    return words[0].rstrip(",") if words and words[0].startswith("OpenSSH") else None


def lookup_openssh(
    ssh: str, alias: str, user: str | None, port: int | None, key: str | None, ssh_config: Path | None
) -> HostOptions:
    argv = [ssh, "-G", *_config_args(ssh_config)]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    if key and os.path.isfile(key):  # a missing key is reported by the connection, with its path
        argv += ["-i", key]
    argv += ["--", alias]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=SSH_G_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise SshConfigError(f"`ssh -G {alias}` did not answer within {SSH_G_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise SshConfigError(f"cannot run {ssh}: {exc}") from exc
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {proc.returncode}"
        raise SshConfigError(f"OpenSSH cannot resolve {alias!r} from the ssh config: {reason}")
    return options_from_ssh_g(parse_ssh_g(proc.stdout), alias)


def lookup_paramiko(
    alias: str, user: str | None, port: int | None, key: str | None, ssh_config: Path | None
) -> HostOptions:
    """paramiko.SSHConfig with OpenSSH's defaults (identities, known_hosts files) filled in."""
    path = ssh_config or Path(_home()) / ".ssh" / "config"
    looked: dict[str, object] = {}
    if path.is_file():
        try:
            looked = dict(paramiko.SSHConfig.from_path(str(path)).lookup(alias))
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise SshConfigError(f"cannot read {path}: {exc}") from exc

    def values(name: str) -> list[str]:
        value = looked.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    identities = ([key] if key and os.path.isfile(key) else []) + values("identityfile")
    if not identities:
        identities = [f"~/.ssh/{name}" for name in DEFAULT_IDENTITIES]
    jump = (values("proxyjump") or [""])[0]
    command = (values("proxycommand") or [""])[0]
    agent = (values("identityagent") or [""])[0]
    user_files = " ".join(values("userknownhostsfile")) or "~/.ssh/known_hosts ~/.ssh/known_hosts2"
    global_files = (
        " ".join(values("globalknownhostsfile")) or "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
    )
    return HostOptions(
        hostname=(values("hostname") or [alias])[0],
        port=port or int((values("port") or ["22"])[0]),
        user=user or (values("user") or [getpass.getuser()])[0],
        identity_files=tuple(expand_home(p) for p in identities),
        identities_only=(values("identitiesonly") or ["no"])[0].lower() == "yes",
        identity_agent=None if agent in ("", "SSH_AUTH_SOCK") else expand_home(agent),
        proxy_jump=tuple(h for h in jump.split(",") if h) if jump and jump != "none" else (),
        # paramiko has expanded the tokens already: escape what is left so ours leave it alone
        proxy_command=command.replace("%", "%%") if command and command != "none" else None,
        user_known_hosts=tuple(Path(expand_home(p)) for p in user_files.split()),
        global_known_hosts=tuple(Path(expand_home(p)) for p in global_files.split()),
        host_key_alias=next(iter(values("hostkeyalias")), None),
        alias=alias,
    )


# -- tokens and jump specs ---------------------------------------------------------------------------


def expand_tokens(command: str, options: HostOptions, what: str = "ProxyCommand", jump: str = "") -> str:
    """ssh_config(5) TOKENS (ProxyCommand, IdentityFile); an unknown token is an error, as in ssh."""
    local_host = socket.gethostname()
    values = {
        "%": "%",
        "h": options.hostname,
        "p": str(options.port),
        "r": options.user,
        "n": options.alias,
        "u": getpass.getuser(),
        "d": _home(),
        "i": str(os.getuid()),
        "l": local_host,
        "L": local_host.split(".")[0],
        "k": options.host_key_alias or options.hostname,
        "j": jump,
        "C": hashlib.sha1(
            f"{local_host}{options.hostname}{options.port}{options.user}{jump}".encode()
        ).hexdigest(),
    }

    def one(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in values:
            raise SshConfigError(f"unknown token %{token} in the {what} of {options.alias}")
        return values[token]

    return re.sub(r"%(.)", one, command)


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` or `ssh://[user@]host[:port]` (IPv6 in brackets) -> (user, host, port)."""
    rest = spec.removeprefix("ssh://")
    user = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port: int | None = None
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", rest)
    if match is None:
        raise SshConfigError(f"cannot read the jump host {spec!r}")
    host = match.group(1) or match.group(3)
    digits = match.group(2) or match.group(4)
    if digits:
        port = int(digits)
    return user, host, port


# -- resolving a destination into a chain of targets ------------------------------------------------


class Resolver:
    """Resolves destinations with one parser for all hops: OpenSSH's `ssh -G`, else paramiko's."""

    def __init__(self, ssh_config: Path | None = None, ssh: str | None = "") -> None:
        """`ssh`: the OpenSSH client to ask ("" finds it on PATH; None: use paramiko's parser)."""
        self.ssh_config = ssh_config
        found = shutil.which("ssh") if ssh == "" else ssh
        version = openssh_version(found) if found else None
        self.ssh = found if version else None
        if version:
            self.resolved_by = f"{version} (ssh -G)"
        else:
            self.resolved_by = "paramiko's parser (OpenSSH's ssh not found: Include is not followed)"

    def options(self, alias: str, user: str | None, port: int | None, key: str | None) -> HostOptions:
        if self.ssh:
            return lookup_openssh(self.ssh, alias, user, port, key, self.ssh_config)
        return lookup_paramiko(alias, user, port, key, self.ssh_config)

    def target(
        self,
        destination: str,
        port: int | None = None,
        key_path: str | None = None,
        known_hosts: str | None = None,
    ) -> SshTarget:
        """`[user@]alias`; the profile's port, key and known_hosts win over the config.

        The profile's known_hosts file (when set) is used for every hop; a hop's own identities are
        its config's (the profile's key is for the cluster, as `ssh -i` is for the destination).
        """
        user, alias = destination.rsplit("@", 1) if "@" in destination else (None, destination)
        key = os.path.expanduser(key_path) if key_path else None
        return self._build(self.options(alias, user, port, key), key, known_hosts, None, 0)

    def _build(
        self,
        options: HostOptions,
        key: str | None,
        known_hosts: str | None,
        via: SshTarget | None,
        depth: int,
    ) -> SshTarget:
        if depth > MAX_HOPS:
            raise SshConfigError(
                f"more than {MAX_HOPS} jump hosts before {options.alias}: is there a ProxyJump loop in the ssh config?"
            )
        proxy_command = None
        if via is None and options.proxy_jump:
            hops = [
                self.options(host, user, port, None)
                for user, host, port in map(parse_jump, options.proxy_jump)
            ]
            via = self._build(hops[0], None, known_hosts, None, depth + 1)
            for hop in hops[1:]:
                via = self._build(hop, None, known_hosts, via, depth + 1)
        elif via is None and options.proxy_command:
            proxy_command = expand_tokens(options.proxy_command, options)
        keys = list(options.identity_files)
        if key and key not in keys:
            keys.insert(0, key)  # missing: kept so that the failure names it
        user_files = (Path(os.path.expanduser(known_hosts)),) if known_hosts else options.user_known_hosts
        user_files = user_files or (Path(_home()) / ".ssh" / "known_hosts",)
        return SshTarget(
            hostname=options.hostname,
            port=options.port,
            user=options.user,
            key_files=tuple(dict.fromkeys(keys)),
            proxy_jump=",".join(options.proxy_jump) or None,
            known_hosts=user_files[0],
            known_hosts_files=user_files + options.global_known_hosts,
            via=via,
            proxy_command=proxy_command,
            host_key_alias=options.host_key_alias,
            identities_only=options.identities_only,
            identity_agent=options.identity_agent,
            resolved_by=self.resolved_by,
            alias=options.alias,
        )


def is_default_identity(path: str) -> bool:
    """Whether `path` is one of ssh's default identities (a missing one is not worth a word)."""
    candidate = Path(path)
    return candidate.name in DEFAULT_IDENTITIES and candidate.parent == Path(_home()) / ".ssh"
