"""git, through its command line: status, remotes, fetch, pinned worktrees and dirty-tree snapshots.

Every call is `subprocess.run(["git", ...])` with an argv list (never a shell), a timeout, and
`GIT_TERMINAL_PROMPT=0` so a fetch that needs credentials fails with a message instead of waiting
for a password nobody can type.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from msquant_desktop.domain.projects import RepoStatus

log = logging.getLogger(__name__)

LOCAL_TIMEOUT_S = 30.0
NETWORK_TIMEOUT_S = 120.0


class GitError(RuntimeError):
    """A git command failed; the message carries git's own words."""


class NotAGitWorkTree(GitError):
    """The folder is not inside a git work tree."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"  # messages we show and parse stay in one language
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def git(
    repo: str | Path,
    *args: str,
    timeout: float = LOCAL_TIMEOUT_S,
    check: bool = True,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run `git -C repo args...`; raise GitError with git's stderr when it fails and `check`."""
    argv = ["git", "-C", str(repo), *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=text, timeout=timeout, env=_env(), stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed (no 'git' on PATH)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args[:2])} did not finish within {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise GitError(f"git {' '.join(args[:2])} failed: {err.strip() or f'exit {proc.returncode}'}")
    return proc


def work_tree_root(path: str | Path) -> Path:
    """The top folder of the work tree containing `path`; NotAGitWorkTree with a clear message if none."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NotAGitWorkTree(f"{folder} is not a folder")
    proc = git(folder, "rev-parse", "--is-inside-work-tree", "--show-toplevel", check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or lines[0] != "true" or len(lines) < 2:
        raise NotAGitWorkTree(
            f"{folder} is not a git work tree (no .git found here or above it). "
            "Choose the folder of a cloned repository, or run 'git init' there first."
        )
    return Path(lines[1])


def remotes(repo: str | Path) -> list[tuple[str, str]]:
    """(name, fetch URL) of each remote."""
    out = git(repo, "remote", "-v").stdout
    found: list[tuple[str, str]] = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "(fetch)":
            found.append((parts[0], parts[1]))
    return found


def status(repo: str | Path) -> RepoStatus:
    """Branch, HEAD, dirty count and ahead/behind from what git already knows (no network)."""
    root = work_tree_root(repo)
    out = git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=all").stdout
    head_sha = ""
    branch: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    dirty = 0
    for line in out.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            head_sha = "" if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line.startswith("# branch.upstream "):
            upstream = line.split(" ", 2)[2]
        elif line.startswith("# branch.ab "):
            _, _, a, b = line.split(" ")
            ahead, behind = int(a.lstrip("+")), int(b.lstrip("-"))
        elif line and not line.startswith("#"):
            dirty += 1
    if upstream is not None and ahead is None:
        # The upstream is configured but git has never seen it (never fetched): unknown counts.
        upstream = f"{upstream} (not fetched)"
    subject = git(root, "log", "-1", "--format=%s").stdout.strip() if head_sha else ""
    return RepoStatus(
        root=str(root),
        branch=branch,
        head_sha=head_sha,
        head_subject=subject,
        dirty_count=dirty,
        upstream=upstream,
        ahead=ahead,
        behind=behind,
        remotes=tuple(remotes(root)),
    )


def fetch(repo: str | Path) -> None:
    """`git fetch --all --prune`: updates what git knows about its remotes (ahead/behind, pushed)."""
    git(repo, "fetch", "--all", "--prune", "--quiet", timeout=NETWORK_TIMEOUT_S)


def remote_branches_containing(repo: str | Path, commit: str) -> list[str]:
    """Remote-tracking branches that contain `commit` (as of the last fetch)."""
    out = git(repo, "branch", "-r", "--contains", commit, "--format=%(refname:short)").stdout
    return [line.strip() for line in out.splitlines() if line.strip() and "->" not in line]


def newest_pushed_commit(repo: str | Path, commit: str = "HEAD") -> str | None:
    """The newest commit on `commit`'s first-parent line that some remote branch contains, or None."""
    unpushed = set(git(repo, "rev-list", commit, "--not", "--remotes").stdout.split())
    line = git(repo, "rev-list", "--first-parent", "--max-count=2000", commit).stdout.split()
    for sha in line:
        if sha not in unpushed:
            return str(sha)
    return None


def resolve_commit(repo: str | Path, rev: str = "HEAD") -> str:
    """The full SHA of `rev`."""
    return str(git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").stdout.strip())


def commit_subject(repo: str | Path, commit: str) -> str:
    return str(git(repo, "log", "-1", "--format=%s", commit).stdout.strip())


def snapshot_patch(repo: str | Path) -> bytes:
    """Uncommitted changes (staged, unstaged and untracked files) as one binary patch against HEAD.

    Empty when the tree is clean.  Untracked files are diffed against /dev/null one by one so the index
    is never touched (a snapshot must not change the user's repository).
    """
    root = work_tree_root(repo)
    patch = git(root, "diff", "HEAD", "--binary", text=False).stdout
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "-z").stdout.split("\0")
    parts = [patch]
    for name in filter(None, untracked):
        # --no-index exits 1 when the files differ, which they always do here.
        proc = git(root, "diff", "--binary", "--no-index", "--", "/dev/null", name, text=False, check=False)
        if proc.returncode not in (0, 1):
            raise GitError(
                f"could not snapshot untracked file {name}: {proc.stderr.decode(errors='replace')}"
            )
        parts.append(proc.stdout)
    return b"".join(parts)


def add_pinned_worktree(repo: str | Path, dest: str | Path, commit: str) -> Path:
    """A detached worktree of exactly `commit` at `dest` (which must not exist yet)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise GitError(f"{dest} already exists and is not empty")
    git(repo, "worktree", "add", "--detach", "--quiet", str(dest), commit)
    return dest


def apply_patch(worktree: str | Path, patch_file: str | Path) -> None:
    """Apply a snapshot made by `snapshot_patch` inside a worktree."""
    if Path(patch_file).stat().st_size == 0:
        return
    git(worktree, "apply", "--binary", "--whitespace=nowarn", str(patch_file))


def prune_worktrees(repo: str | Path) -> None:
    """Forget worktrees whose folders were deleted (e.g. with their job's run folder)."""
    git(repo, "worktree", "prune", check=False)


def remove_worktree(repo: str | Path, dest: str | Path) -> None:
    """Remove a worktree made by `add_pinned_worktree` (its folder and git's record of it)."""
    git(repo, "worktree", "remove", "--force", str(dest), check=False)
    prune_worktrees(repo)
