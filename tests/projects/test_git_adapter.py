"""The git adapter against real repositories: status, remotes, fetch, pushed commits, pinned trees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from msquant_desktop.projects import git as g
from msquant_desktop.projects.runner import prepare_pinned_tree
from tests.projects.conftest import TRAIN_PY, SampleRepo, commit_all, git


def test_status_of_a_clone_with_unpushed_commit_and_dirty_files(sample_repo: SampleRepo) -> None:
    work = sample_repo.work
    (work / "train.py").write_text("edited\n")
    (work / "notes.txt").write_text("untracked\n")
    (work / "conf" / "model" / "small.yaml").write_text("hidden: 65\n")
    git(work, "add", "conf/model/small.yaml")

    st = g.status(work / "conf")  # any folder inside the tree works
    assert st.root == str(work)
    assert st.branch == "main"
    assert st.head_sha == sample_repo.unpushed
    assert st.head_subject == "bigger batch"
    assert st.dirty_count == 3
    assert (st.upstream, st.ahead, st.behind) == ("origin/main", 1, 0)
    assert st.remotes == (("origin", str(sample_repo.remote)),)
    assert st.ahead_behind_text() == "1 ahead, 0 behind origin/main"


def test_behind_count_appears_only_after_fetch(sample_repo: SampleRepo, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(sample_repo.remote), str(other)], check=True)
    git(other, "config", "user.email", "o@example.invalid")
    git(other, "config", "user.name", "Other")
    (other / "README").write_text("hi\n")
    commit_all(other, "readme")
    git(other, "push", "-q", "origin", "main")

    assert g.status(sample_repo.work).behind == 0  # git does not know yet: no network in status
    g.fetch(sample_repo.work)
    st = g.status(sample_repo.work)
    assert (st.ahead, st.behind) == (1, 1)


def test_pushed_commit_detection(sample_repo: SampleRepo) -> None:
    assert g.remote_branches_containing(sample_repo.work, sample_repo.pushed) == ["origin/main"]
    assert g.remote_branches_containing(sample_repo.work, sample_repo.unpushed) == []
    assert g.newest_pushed_commit(sample_repo.work) == sample_repo.pushed
    git(sample_repo.work, "push", "-q")
    assert g.newest_pushed_commit(sample_repo.work) == sample_repo.unpushed


def test_not_a_work_tree_is_refused_clearly(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(g.NotAGitWorkTree, match="is not a git work tree"):
        g.work_tree_root(plain)
    with pytest.raises(g.NotAGitWorkTree, match="is not a folder"):
        g.work_tree_root(tmp_path / "missing")


def test_pinned_tree_has_the_commit_plus_the_snapshot(sample_repo: SampleRepo, tmp_path: Path) -> None:
    work = sample_repo.work
    (work / "train.py").write_text(TRAIN_PY.format(version="dirty"))
    (work / "extra.bin").write_bytes(bytes(range(256)))
    patch = tmp_path / "snap.patch"
    patch.write_bytes(g.snapshot_patch(work))
    git(work, "checkout", "--", "train.py")  # the user goes on editing; the snapshot stays
    (work / "extra.bin").unlink()

    tree = prepare_pinned_tree(work, sample_repo.unpushed, tmp_path / "run" / "src", patch)
    assert 'VERSION = "dirty"' in (tree / "train.py").read_text()
    assert (tree / "extra.bin").read_bytes() == bytes(range(256))
    assert git(tree, "rev-parse", "HEAD") == sample_repo.unpushed
    assert git(work, "status", "--porcelain") == ""  # the user's tree and index were not touched

    clean = prepare_pinned_tree(work, sample_repo.pushed, tmp_path / "run2" / "src", None)
    assert 'VERSION = "v1"' in (clean / "train.py").read_text()


def test_fresh_repository_and_detached_head(tmp_path: Path, sample_repo: SampleRepo) -> None:
    from tests.projects.conftest import init_repo

    fresh = tmp_path / "fresh"
    init_repo(fresh)
    (fresh / "a.txt").write_text("a\n")
    st = g.status(fresh)
    assert (st.head_sha, st.head_text(), st.dirty_count, st.upstream) == ("", "no commits yet", 1, None)
    assert st.ahead_behind_text() == "no upstream"

    git(sample_repo.work, "checkout", "-q", "--detach", sample_repo.pushed)
    st = g.status(sample_repo.work)
    assert st.branch is None and st.head_sha == sample_repo.pushed and st.upstream is None
