"""Unit-level faults with exact expectations: a clusters file past its bounds, storage faults told
in one line, secrets typed for a job kept out of the store."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from msquant_desktop.app import known_fault
from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.secrets import HELD, hold_secrets, release_secrets
from msquant_desktop.slurm.profiles import MAX_FILE_BYTES, ProfileError, load_profiles, parse_profiles

ONE = "  - name: c{i}\n    host: u@h\n    workspace: /w\n"


def test_a_clusters_file_near_the_size_limit_parses_within_a_second() -> None:
    count = MAX_FILE_BYTES // len(ONE.format(i=10_000)) - 10
    text = "clusters:\n" + "".join(ONE.format(i=i) for i in range(count))
    started = time.monotonic()
    assert len(parse_profiles(text)) == count
    # Bounded, not a speed test: the 5 MB file that is refused took 51 s before the bound.
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("clusters:\n" + ONE.format(i=0) * 20_000, "KiB is too large"),
        ("clusters:\n" + "".join("  " * i + "-\n" for i in range(1, 40)), "nested more than 16 levels"),
        ("clusters: " + "[" * 3000 + "]" * 3000, "not valid YAML"),
    ],
)
def test_a_clusters_file_past_its_bounds_is_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profiles(text, "/x/clusters.yaml")
    message = str(caught.value)
    assert words in message and message.startswith("/x/clusters.yaml: ") and "\n" not in message


def test_clusters_file_read_errors_name_the_file(tmp_path: Path) -> None:
    latin = tmp_path / "clusters.yaml"
    latin.write_bytes(b"clusters:\n  - name: caf\xe9\n")
    with pytest.raises(ProfileError, match=r"clusters.yaml: not UTF-8 text \(byte 0xe9 on line 2\)"):
        load_profiles(latin)
    with pytest.raises(ProfileError, match="is a folder"):
        load_profiles(tmp_path)


def test_accounting_off_as_yaml_reads_it_is_accepted() -> None:
    (profile,) = parse_profiles("clusters:\n  - {name: a, host: h, workspace: /w, accounting: off}\n")
    assert profile.accounting == "off"


def test_storage_faults_are_one_line_and_bugs_are_not_taken_for_them(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path)
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "x"))
    assert known_fault(full, paths) == f"cannot use {tmp_path / 'data' / 'x'} (No space left on device): free some disk space"
    import sqlite3

    damaged = known_fault(sqlite3.DatabaseError("database disk image is malformed"), paths)
    assert damaged is not None and "is damaged" in damaged and "Move it away" in damaged
    assert known_fault(PermissionError(errno.EPERM, "Operation not permitted"), paths) is None  # a refused kill
    assert known_fault(KeyError("x"), paths) is None


def test_typed_secrets_are_held_and_released_only_where_held() -> None:
    typed = (("HF_TOKEN", "hf_abc"), ("LR", "0.1"), ("MY_PASSWORD", "pw"))
    public, held = hold_secrets(typed)
    assert public == (("HF_TOKEN", HELD), ("LR", "0.1"), ("MY_PASSWORD", HELD))
    assert held == {"HF_TOKEN": "hf_abc", "MY_PASSWORD": "pw"}
    assert release_secrets(public, held, {}) == (typed, [])
    # Not held here: inherited from the environment the job starts in, or missing (must not start).
    env, missing = release_secrets(public, {}, {"HF_TOKEN": "from-env"})
    assert env == (("LR", "0.1"),) and missing == ["MY_PASSWORD"]
