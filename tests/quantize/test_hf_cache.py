"""Models from the local Hugging Face cache: listed by huggingface_hub's own scan, hub names resolved
offline, on caches laid out in tmp exactly as huggingface_hub lays them out (blobs named by their hash,
snapshot files as relative symlinks to them, `refs/<branch>` holding a commit)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from msquant_desktop.domain.quantize import QuantizeRequest
from msquant_desktop.quantize.checks import check_request
from msquant_desktop.quantize.hf_cache import cached_models, hub_cache_dir, resolve_hub_name
from tests.quantize.test_checks import write_model_folder

MAIN = "a" * 40
OLD = "b" * 40


def cache_repo(
    cache: Path, repo_id: str, source: Path, commit: str, refs: tuple[str, ...] = (), kind: str = "models"
) -> Path:
    """Put the files of `source` into `cache` as `hf download` does; returns the snapshot folder."""
    repo = cache / f"{kind}--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache with one model in two revisions, a dataset, and a model repo without config.json."""
    folder = tmp_path / "hf-home" / "hub"
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    model = write_model_folder(tmp_path / "src-model")
    cache_repo(folder, "org/tiny-llama", model, OLD)  # an older revision no branch points at
    cache_repo(folder, "org/tiny-llama", model, MAIN, refs=("main",))
    data = tmp_path / "src-data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "hello"}\n')
    cache_repo(folder, "org/some-data", data, MAIN, refs=("main",), kind="datasets")
    cache_repo(folder, "org/gguf-only", data, MAIN, refs=("main",))  # no config.json: not a model folder
    return folder


def test_the_cache_folder_follows_hf_hub_cache_then_hf_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert hub_cache_dir() == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    assert hub_cache_dir() == tmp_path / "hub-cache"


def test_listing_shows_model_revisions_with_repo_id_and_refs(cache: Path) -> None:
    listing = cached_models()
    assert listing.cache_dir == str(cache) and listing.problem == ""
    assert [(m.repo_id, m.revision, m.refs) for m in listing.models] == [
        ("org/tiny-llama", MAIN, ("main",)),  # the one `main` points at first
        ("org/tiny-llama", OLD, ()),
    ]
    newest = listing.models[0]
    assert Path(newest.path) == cache / "models--org--tiny-llama" / "snapshots" / MAIN
    assert newest.label == f"org/tiny-llama @ {MAIN[:10]} (main)" and newest.size_on_disk > 0
    # A cache that does not exist yet is an empty list, not an error.
    empty = cached_models(cache.parent / "nothing")
    assert empty.models == () and empty.problem == ""


def test_a_hub_name_resolves_offline_to_its_cached_snapshot_and_an_uncached_one_gets_the_hint(
    cache: Path, tmp_path: Path
) -> None:
    snapshot = cache / "models--org--tiny-llama" / "snapshots" / MAIN
    assert resolve_hub_name("org/tiny-llama") == snapshot
    assert resolve_hub_name("org/gguf-only") is None and resolve_hub_name(str(tmp_path)) is None

    report = check_request(QuantizeRequest("org/tiny-llama", "W8A16", str(tmp_path / "out")))
    assert report.ok, report.problems
    assert report.model is not None and report.model.path == snapshot and report.model.parameters > 0

    missing = check_request(QuantizeRequest("org/not-downloaded", "W8A16", str(tmp_path / "out2")))
    text = " ".join(p.message for p in missing.problems)
    assert "is not in the Hugging Face cache" in text and str(cache) in text
    assert "`hf download org/not-downloaded`" in text and "huggingface-cli" not in text
