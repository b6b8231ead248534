"""The pinned-run wrapper: check out an exact commit (plus an optional snapshot patch), then exec.

A local project job's argv is `msquant-desktop project-run --repo R --commit C --dest {run_dir}/src
[--patch P] -- CMD...`.  When the job starts, this creates `git worktree add --detach` of C inside
the job's own run folder, applies the dirty-tree snapshot taken when the user clicked Launch, and
replaces itself (exec) with CMD in that folder.  The worktree is made at start, not at click, because
the run folder exists only then; the commit and the patch were fixed at click, so edits the user
makes afterwards never reach the job.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from msquant_desktop.projects.git import (
    GitError,
    add_pinned_worktree,
    apply_patch,
    remove_worktree,
    resolve_commit,
)


class PinnedRunError(RuntimeError):
    """The pinned tree could not be prepared; nothing was run."""


def prepare_pinned_tree(repo: str | Path, commit: str, dest: str | Path, patch: str | Path | None) -> Path:
    """Worktree of exactly `commit` at `dest`, with `patch` applied; returns `dest`."""
    try:
        full = resolve_commit(repo, commit)
        tree = add_pinned_worktree(repo, dest, full)
        if patch:
            if not Path(patch).is_file():
                raise PinnedRunError(f"the snapshot patch {patch} is missing")
            apply_patch(tree, patch)
    except GitError as exc:
        raise PinnedRunError(str(exc)) from exc
    return tree


@contextmanager
def temporary_pinned_tree(
    repo: str | Path, commit: str, patch: str | Path | None, parent: str | Path | None = None
) -> Iterator[Path]:
    """The same tree a job gets (commit + patch), for as long as the block runs, then removed.

    A launch composes its config here, so the config stored with the job is the one the job's own
    Hydra composes from the same files.
    """
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    holder = Path(tempfile.mkdtemp(prefix="msquant-compose-", dir=parent))
    tree = holder / "src"
    try:
        prepare_pinned_tree(repo, commit, tree, patch)
        yield tree
    finally:
        if tree.exists():
            remove_worktree(repo, tree)
        shutil.rmtree(holder, ignore_errors=True)


def exec_command(tree: Path, command: Sequence[str]) -> None:
    """Replace this process with `command` running in `tree` (never returns on success)."""
    if not command:
        raise PinnedRunError("no command to run")
    if shutil.which(command[0], path=os.environ.get("PATH")) is None and os.sep not in command[0]:
        raise PinnedRunError(f"{command[0]!r} was not found on PATH")
    os.chdir(tree)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], list(command))
