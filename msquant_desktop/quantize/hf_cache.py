"""Models already in the local Hugging Face cache: listed for the pickers, and hub names resolved offline.

The cache is laid out by huggingface_hub as `models--ORG--NAME/{blobs,refs,snapshots/<commit>/...}`
with `refs/main` holding the commit a plain download resolved to.  Its folder is the one
huggingface_hub itself uses: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`
(read from the environment at each call, not at import, so a changed environment is seen).  Listing
uses huggingface_hub's own `scan_cache_dir` (it walks every snapshot: the caller runs it off the GUI
thread); nothing here touches the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.quantize import HUB_NAME_RE


@dataclass(frozen=True)
class CachedModel:
    """One revision of a model repository in the cache."""

    repo_id: str
    revision: str
    """The commit hash of the snapshot."""
    refs: tuple[str, ...]
    """Branch or tag names pointing at it (`main` for a plain download)."""
    path: str
    """The snapshot folder: a model folder like any other."""
    size_on_disk: int

    @property
    def label(self) -> str:
        refs = f" ({', '.join(self.refs)})" if self.refs else ""
        return f"{self.repo_id} @ {self.revision[:10]}{refs}"


@dataclass(frozen=True)
class CacheListing:
    models: tuple[CachedModel, ...]
    cache_dir: str
    problem: str = ""
    """Why nothing could be listed ("" when the scan ran; an empty or missing cache is no problem)."""


def hub_cache_dir() -> Path:
    """The cache folder huggingface_hub uses with this environment."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def cached_models(cache_dir: Path | None = None) -> CacheListing:
    """Every model revision in the cache that looks like a model folder (has config.json), sorted by
    repo id; within a repo the revisions with a branch or tag first, then the newest.  Blocking: walks
    the cache."""
    folder = cache_dir or hub_cache_dir()
    if not folder.is_dir():
        return CacheListing((), str(folder))
    try:
        from huggingface_hub import scan_cache_dir
    except ImportError:
        return CacheListing((), str(folder), "huggingface_hub is not installed: browse for a folder instead")
    try:
        info = scan_cache_dir(folder)
    except Exception as exc:  # CacheNotFound, a permission error: a value to show, not a crash
        return CacheListing((), str(folder), f"cannot read the Hugging Face cache {folder}: {exc}")
    models = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        # The revision a branch points at first (what the plain hub name loads), then newest first.
        for revision in sorted(repo.revisions, key=lambda r: (not r.refs, -r.last_modified, r.commit_hash)):
            if not (Path(revision.snapshot_path) / "config.json").is_file():
                continue  # a partial download, or a repo that holds no transformers model
            models.append(
                CachedModel(
                    repo.repo_id,
                    revision.commit_hash,
                    tuple(sorted(revision.refs)),
                    str(revision.snapshot_path),
                    revision.size_on_disk,
                )
            )
    models.sort(key=lambda m: m.repo_id.lower())  # stable: revisions stay newest first
    return CacheListing(tuple(models), str(folder))


def download_command(repo_id: str, revision: str | None = None) -> str:
    """The command that puts a model in the cache (today's `hf`, not the retired huggingface-cli)."""
    return f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")


def download_hint(repo_id: str) -> str:
    """What to run here to get an uncached model."""
    return f"`{download_command(repo_id)}` puts it in the cache (then it is found here offline)"


def resolve_hub_name(text: str, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot a hub name (`org/name`) resolves to offline: the commit `refs/main` names,
    as `from_pretrained` would pick with HF_HUB_OFFLINE=1.  None when it is not a hub name or not
    cached (with a config.json)."""
    if HUB_NAME_RE.fullmatch(text) is None:
        return None
    repo = (cache_dir or hub_cache_dir()) / ("models--" + text.replace("/", "--"))
    try:
        commit = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    snapshot = repo / "snapshots" / commit
    if not commit or "/" in commit or not (snapshot / "config.json").is_file():
        return None
    return snapshot
