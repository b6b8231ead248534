"""What a job without a repository needs on the cluster besides sbatch: its files uploaded, the
cluster's Python checked before anything is submitted, and result folders copied back.

Every command goes through `SshConnection.run` with an argv (quoted word by word); the probe reads
package versions with `importlib.metadata` and `find_spec`, so it never imports torch or
llmcompressor (that takes seconds) and answers in one round trip.
"""

from __future__ import annotations

import contextlib
import functools
import json
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import paramiko

from msquant_desktop.slurm.connection import SshConnection, SshError

MIN_PYTHON = (3, 10)
"""The workers use `X | Y` types at run time."""

HUB_ARG = "--hub="
"""A probe argument `--hub=ORG/NAME[@REVISION]`: a repo id to resolve in the cluster's HF cache."""

# Run as `PYTHON -c PROBE ARG...`: the interpreter's version, the versions of the packages the
# workers need (None: not installed) and, for each PATH argument, whether it is a model folder, a
# non-empty folder, or absent.  A `--hub=` argument is looked up in the cache by huggingface_hub
# itself (its `HF_HUB_CACHE`, which follows HF_HUB_CACHE / HF_HOME / ~/.cache as it always does, and
# `try_to_load_from_cache`, which reads `refs/<revision>` and takes a commit hash as it is): the
# snapshot folder it names, or why there is none.
_PROBE = """
import importlib.metadata as m, importlib.util as u, json, os, sys
out = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable, "packages": {}, "paths": {},
       "weights": {}, "hub": {}}
for name in ("llmcompressor", "torch", "transformers", "compressed_tensors"):
    try:
        found = u.find_spec(name) is not None
    except Exception:
        found = False
    if not found:
        out["packages"][name] = None
        continue
    try:
        out["packages"][name] = m.version(name.replace("_", "-"))
    except Exception:
        out["packages"][name] = "unknown"
def weights(p):
    names = [n for n in os.listdir(p) if n.endswith((".safetensors", ".bin"))]
    return sum(os.path.getsize(os.path.join(p, n)) for n in names)
def hub(ref):
    repo_id, _, rev = ref.partition("@")
    try:
        from huggingface_hub import constants, try_to_load_from_cache
    except Exception as exc:
        return {"state": "no-hub", "why": str(exc)}
    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
    entry = {"cache": constants.HF_HUB_CACHE, "folder": folder, "revision": rev or "main"}
    try:
        config = try_to_load_from_cache(repo_id, "config.json", revision=rev or None)
    except Exception as exc:
        return dict(entry, state="error", why=str(exc))
    if isinstance(config, str) and os.path.isfile(config):
        snapshot = os.path.dirname(config)
        out["weights"][snapshot] = weights(snapshot)
        return dict(entry, state="model", path=snapshot, commit=os.path.basename(snapshot))
    if not os.path.isdir(folder):
        return dict(entry, state="absent")
    known = os.path.isfile(os.path.join(folder, "refs", rev or "main")) or os.path.isdir(
        os.path.join(folder, "snapshots", rev or "main"))
    return dict(entry, state="no-config" if known else "no-revision")
for arg in sys.argv[1:]:
    if arg.startswith("--hub="):
        out["hub"][arg[6:]] = hub(arg[6:])
        continue
    p = os.path.expanduser(arg)
    if os.path.isfile(os.path.join(p, "config.json")):
        out["paths"][arg] = "model"
        out["weights"][arg] = weights(p)
    elif os.path.isdir(p):
        out["paths"][arg] = "folder" if os.listdir(p) else "empty"
    elif os.path.exists(p):
        out["paths"][arg] = "file"
    else:
        out["paths"][arg] = "absent"
print(json.dumps(out))
"""


class RemotePythonError(RuntimeError):
    """The cluster's Python cannot run the workers; the message is one line that says what to do."""


@dataclass(frozen=True)
class RemotePython:
    """What the probe found: the interpreter, its version and the packages' versions (None: missing)."""

    path: str
    version: str
    executable: str
    packages: dict[str, str | None] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    """Each path asked about: "model" (has config.json), "folder", "empty", "file" or "absent"."""
    weights: dict[str, int] = field(default_factory=dict)
    """Of each model folder (a resolved snapshot's too): the bytes of its weight files (`*.safetensors`,
    `*.bin`)."""
    hub: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each repo id asked about (`org/name[@revision]`): "state" ("model", "absent", "no-revision",
    "no-config", "no-hub", "error"), "cache" and "folder" looked in, and when found the snapshot's
    "path" and "commit"."""

    @property
    def llmcompressor(self) -> str | None:
        return self.packages.get("llmcompressor")

    def describe(self) -> str:
        return f"{self.path} (Python {self.version}, llmcompressor {self.llmcompressor})"


def probe_python(
    connection: SshConnection,
    python: str,
    paths: tuple[str, ...] = (),
    where: str = "",
    hub: tuple[str, ...] = (),
) -> RemotePython:
    """Ask `python` on the cluster for its version, its packages, what `paths` are there and where
    the repo ids `hub` (`org/name[@revision]`, validated by the caller) are in its HF cache.

    Raises RemotePythonError with one line when it cannot be run there or is too old, SshError when
    the connection fails.
    """
    where = where or connection.target.label
    if not python.strip():
        raise RemotePythonError(f"no Python is set for {where}: give --python or the cluster's `python:`")
    args = [*paths, *(HUB_ARG + ref for ref in hub)]
    result = connection.run([python, "-c", _PROBE, *args], timeout=60.0)
    last = result.out.strip().splitlines()[-1] if result.out.strip() else ""
    if result.rc != 0 or not last.startswith("{"):
        words = (result.err.strip().splitlines() or [f"exit status {result.rc}"])[-1]
        if result.rc in (126, 127):
            raise RemotePythonError(f"the Python {python} cannot be run on {where}: {words}")
        raise RemotePythonError(f"the Python {python} on {where} failed to answer: {words}")
    data = json.loads(last)
    found = RemotePython(
        python,
        data["python"],
        data["executable"],
        data["packages"],
        data["paths"],
        data.get("weights", {}),
        data.get("hub", {}),
    )
    if tuple(int(x) for x in found.version.split(".")[:2]) < MIN_PYTHON:
        raise RemotePythonError(
            f"{python} on {where} is Python {found.version}; the workers need "
            f"{'.'.join(map(str, MIN_PYTHON))} or newer"
        )
    return found


def require_llmcompressor(found: RemotePython, where: str) -> None:
    """One line naming what is missing from the cluster's Python, else nothing."""
    missing = [name for name in ("llmcompressor", "torch", "transformers") if not found.packages.get(name)]
    if missing:
        raise RemotePythonError(
            f"{found.path} on {where} (Python {found.version}) has no {', '.join(missing)}: "
            f"install llmcompressor there (`{found.path} -m pip install llmcompressor`) or choose another "
            "Python (--python, or `python:` in the cluster's profile)"
        )


def upload_file(connection: SshConnection, local: str, remote: str, mode: int = 0o600) -> None:
    """Copy one local file to `remote` (written to `remote.partial`, then renamed: a cut never leaves
    a half file under the real name)."""
    sftp = connection.sftp()
    partial = remote + ".partial"
    try:
        sftp.put(local, partial, confirm=True)
        sftp.chmod(partial, mode)
        sftp.posix_rename(partial, remote)
    except (OSError, paramiko.SSHException) as exc:
        connection.close()
        raise SshError(f"cannot upload {local} to {remote} on {connection.target.label}: {exc}") from exc


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the folder copied
    size: int


def list_tree(connection: SshConnection, root: str) -> list[RemoteFile]:
    """Every regular file under `root` (relative paths, sizes), folders walked by SFTP."""
    sftp = connection.sftp()
    files: list[RemoteFile] = []
    todo = [""]
    try:
        while todo:
            rel = todo.pop()
            for entry in sftp.listdir_attr(f"{root}/{rel}" if rel else root):
                child = f"{rel}/{entry.filename}" if rel else entry.filename
                mode = entry.st_mode or 0
                if stat.S_ISDIR(mode):
                    todo.append(child)
                elif stat.S_ISREG(mode):
                    files.append(RemoteFile(child, int(entry.st_size or 0)))
    except (OSError, paramiko.SSHException) as exc:
        raise SshError(f"cannot list {root} on {connection.target.label}: {exc}") from exc
    return sorted(files, key=lambda f: f.path)


CHUNK = 1 << 20


def fetch_file(
    connection: SshConnection,
    source: str,
    partial: Path,
    offset: int,
    on_chunk: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> int:
    """Append `source` on the cluster, read from `offset` (SFTP reads from an offset), to the local
    file `partial` until its end; returns the bytes copied.  `on_chunk(n)` follows each piece
    written (it may raise to stop: the piece is on disk, the copy resumable).  A failure of the
    connection is an SshError (call again from the new size); a local disk problem is itself (OSError).
    """
    sftp = connection.sftp()
    src = _remote_call(connection, source, functools.partial(sftp.open, source, "rb"))
    copied = 0
    try:
        src.seek(offset)
        with partial.open("ab") as out:
            while piece := _remote_call(connection, source, functools.partial(src.read, chunk)):
                out.write(piece)
                copied += len(piece)
                if on_chunk is not None:
                    on_chunk(len(piece))
    finally:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            src.close()
    return copied


T = TypeVar("T")


def _remote_call(connection: SshConnection, source: str, call: Callable[[], T]) -> T:
    """One SFTP request of a download; a failure of the connection is an SshError (resumable)."""
    try:
        return call()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        connection.close()
        raise SshError(f"copy of {source} from {connection.target.label} cut: {exc}") from exc
