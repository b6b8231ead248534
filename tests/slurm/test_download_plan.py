"""What a cluster download does with the files already on disk (services/cluster_download.py), on
real files: skip what is whole, continue what was cut short, start over what cannot be ours, and
refuse a folder that is not an earlier download of the same result, before connecting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msquant_desktop.services.cluster_download import (
    MARKER,
    DownloadError,
    DownloadSource,
    FileStep,
    check_destination,
    download_result,
    plan_download,
)
from msquant_desktop.slurm.connection import SshConnection
from msquant_desktop.slurm.remote_tools import RemoteFile

SOURCE = DownloadSource(7, "gpu-a", "/scratch/u/w4a16")
FILES = [
    RemoteFile("config.json", 10),
    RemoteFile("model.safetensors", 20),
    RemoteFile("recipe.yaml", 30),
    RemoteFile("tokenizer.json", 5),
    RemoteFile("sub/extra.bin", 7),
    RemoteFile("done-but-not-renamed.bin", 4),
]


def test_each_file_is_skipped_continued_restarted_or_fetched(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"x" * 10)  # whole
    (tmp_path / "model.safetensors.partial").write_bytes(b"y" * 8)  # cut short after 8 bytes
    (tmp_path / "recipe.yaml.partial").write_bytes(b"z" * 40)  # longer than the file: not ours
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "extra.bin").write_bytes(b"w" * 3)  # a wrong size under the real name
    (tmp_path / "done-but-not-renamed.bin.partial").write_bytes(b"v" * 4)  # cut before the rename
    assert plan_download(FILES, tmp_path) == [
        FileStep("config.json", 10, "skip"),
        FileStep("model.safetensors", 20, "continue", 8),
        FileStep("recipe.yaml", 30, "restart"),
        FileStep("tokenizer.json", 5, "fetch"),
        FileStep("sub/extra.bin", 7, "fetch"),
        FileStep("done-but-not-renamed.bin", 4, "continue", 4),
    ]
    assert plan_download(FILES, tmp_path / "new") == [FileStep(f.path, f.size, "fetch") for f in FILES]


def test_a_folder_is_accepted_only_when_empty_or_an_earlier_download_of_the_same_result(
    tmp_path: Path,
) -> None:
    check_destination(tmp_path / "absent", SOURCE)  # made when the first file comes
    empty = tmp_path / "empty"
    empty.mkdir()
    check_destination(empty, SOURCE)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DownloadError) as refused:
        check_destination(foreign, SOURCE)
    assert str(refused.value) == (
        f"{foreign} is not empty and is not an earlier download of job 7: choose an empty or new folder"
    )

    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "model.safetensors.partial").write_bytes(b"y")
    (cut / MARKER).write_text(json.dumps({"cluster": "gpu-a", "output": "/scratch/u/w4a16"}))
    check_destination(cut, SOURCE)
    other = DownloadSource(8, "gpu-a", "/scratch/u/w8a8")
    with pytest.raises(DownloadError, match="holds a download of gpu-a:/scratch/u/w4a16, not of gpu-a:"):
        check_destination(cut, other)
    elsewhere = DownloadSource(7, "gpu-b", "/scratch/u/w4a16")  # the same path on another cluster
    with pytest.raises(DownloadError, match="holds a download of"):
        check_destination(cut, elsewhere)

    # The complete copy recorded on the result (no marker left) is checked again file by file.
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "config.json").write_text("{}")
    with pytest.raises(DownloadError, match="not an earlier download"):
        check_destination(whole, SOURCE)
    check_destination(whole, DownloadSource(7, "gpu-a", "/scratch/u/w4a16", local_copy=str(whole)))

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(DownloadError, match="is a file: choose a folder"):
        check_destination(a_file, SOURCE)


def test_a_refused_folder_is_refused_before_connecting_and_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")

    def connect() -> SshConnection:
        raise AssertionError("a refused folder must not open a connection")

    with pytest.raises(DownloadError, match="not an earlier download of job 7"):
        download_result(connect, SOURCE, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
