"""The attack run's bad inputs, reconstructed: every one gets a non-zero exit and a clear last line
on stderr, and none a traceback.  Each case runs the real command in its own process.

The cases are the ones the fault report lists (ids, numbers, data dirs, settings, clusters files,
stores, model folders, texts, projects) plus their neighbours: a newline, a NUL byte, a shell
metacharacter or a huge value in each kind of field.  Faults that need mounts (full disk, read-only
store) are in test_store_faults.py and tests/jobs/test_full_disk.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

GOOD_CLUSTER = "  - name: c\n    host: u@h\n    workspace: /w\n"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    """Writes the files the case needs under its own folder (data dir is `<folder>/d`)."""
    words: str = ""
    """Expected in the last line of stderr (besides: no traceback, non-zero exit)."""


def _write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _clusters(content: str | bytes, words: str = "") -> tuple[Callable[[Path], None], str]:
    return _write("clusters.yaml", content), words


def _store(content: bytes) -> Callable[[Path], None]:
    return _write("d/data/msquant.sqlite3", content)


def _cluster_cases() -> list[Case]:
    bad = {
        "not UTF-8": (b"clusters:\n  - name: caf\xe9\n", "not UTF-8"),
        "deep flow nesting": ("clusters: " + "[" * 5000 + "]" * 5000, "clusters.yaml"),
        "deep block nesting": ("clusters:\n" + "".join("  " * i + "-\n" for i in range(1, 60)), "nested more than"),
        "5 MB": ("clusters:\n" + GOOD_CLUSTER * 60_000, "too large"),
        "not YAML": ("clusters: [\n  - x: : :", "not valid YAML"),
        "a list at the top": ("- a\n- b\n", "'clusters:' list"),
        "unknown field": ("clusters:\n  - {name: c, host: h, workspace: /w, colour: red}\n", "unknown field"),
        "a password field": ("clusters:\n  - {name: c, host: h, workspace: /w, password: x}\n", "not allowed"),
        "newline in host": ('clusters:\n  - {name: c, host: "h\\nrm -rf /", workspace: /w}\n', "control characters"),
        "port 70000": ("clusters:\n  - {name: c, host: h, workspace: /w, port: 70000}\n", "port"),
        "port true": ("clusters:\n  - {name: c, host: h, workspace: /w, port: true}\n", "port"),
        "accounting maybe": ("clusters:\n  - {name: c, host: h, workspace: /w, accounting: maybe}\n", "accounting"),
        "two clusters named c": ("clusters:\n" + GOOD_CLUSTER * 2, "appears twice"),
        "relative workspace": ("clusters:\n  - {name: c, host: h, workspace: w}\n", "absolute"),
        "partition with a space": (
            "clusters:\n  - {name: c, host: h, workspace: /w, allowed_partitions: ['gpu; reboot']}\n",
            "list of names",
        ),
        "no host after @": ("clusters:\n  - {name: c, host: 'u@', workspace: /w}\n", "no host"),
        "a cluster that is a string": ("clusters:\n  - just-a-name\n", "must be a mapping"),
    }
    cases = [
        Case(f"clusters.yaml {label}", ("slurm", "gpus", "c", "--clusters", "{root}/clusters.yaml"), *_clusters(*spec))
        for label, spec in bad.items()
    ]
    cases.append(Case("--clusters a folder", ("slurm", "gpus", "c", "--clusters", "{root}"), words="is a folder"))
    cases.append(Case("--clusters missing", ("slurm", "status", "--clusters", "{root}/nope.yaml"), words="no such file"))
    cases.append(
        Case(
            "--clusters unknown cluster",
            ("slurm", "gpus", "other", "--clusters", "{root}/clusters.yaml"),
            _write("clusters.yaml", "clusters:\n" + GOOD_CLUSTER),
            "no cluster named",
        )
    )
    return cases


def _id_cases() -> list[Case]:
    cases = []
    for value in (str(2**70), "-3", "1e3", "abc", "", "0x10", "1\n", "7;rm -rf ~", "٣", "nan"):
        for command in (("jobs", "show"), ("jobs", "cancel"), ("jobs", "logs")):
            cases.append(Case(f"{' '.join(command)} {value!r}", (*command, value), words="job id"))
    for value in ("x", str(2**70), "-1"):
        cases.append(Case(f"slurm logs {value!r}", ("slurm", "logs", value), words="job id"))
    return cases


def _number_cases() -> list[Case]:
    return [
        Case("jobs list --limit 0", ("jobs", "list", "--limit", "0"), words="must be from 1"),
        Case("jobs list --limit huge", ("jobs", "list", "--limit", str(10**30)), words="must be from 1"),
        Case("slurm status --limit -1", ("slurm", "status", "--limit", "-1"), words="must be from 1"),
        Case("doctor --grace -5", ("doctor", "--grace", "-5"), words="0 or more"),
        Case("doctor --grace nan", ("doctor", "--grace", "nan"), words="0 or more"),
        Case("doctor --grace inf", ("doctor", "--grace", "inf"), words="0 or more"),
        Case("jobs run --gpus -1", ("jobs", "run", "--gpus", "-1", "--", "true")),
        Case("gpu --watch 0", ("gpu", "--watch", "0")),
        Case("plan queue rate -1", ("plan", "queue", "--arrival-rate", "-1", "--service-rate", "1", "--replicas", "1")),
        Case("plan queue rate nan", ("plan", "queue", "--arrival-rate", "nan", "--service-rate", "1", "--replicas", "1")),
        Case("plan queue replicas 0", ("plan", "queue", "--arrival-rate", "1", "--service-rate", "1", "--replicas", "0")),
        Case("plan queue service abc", ("plan", "queue", "--arrival-rate", "1", "--service-rate", "abc")),
        Case("plan memory missing model", ("plan", "memory", "--model", "{root}/none"), words="none"),
        Case(
            "plan memory config not JSON",
            ("plan", "memory", "--model", "{root}/m"),
            _write("m/config.json", "{not json"),
        ),
        Case("plan replay missing trace", ("plan", "replay", "--trace", "{root}/none.csv", "--controller", "pid")),
        Case(
            "plan replay trace not CSV",
            ("plan", "replay", "--trace", "{root}/t.csv", "--controller", "pid"),
            _write("t.csv", b"\x00\x01\x02garbage\n;;;\n"),
        ),
    ]


def _data_dir_cases() -> list[Case]:
    return [
        Case("--data-dir a file", ("--data-dir", "{root}/f", "jobs", "list"), _write("f", "x"), "not a folder"),
        Case("--data-dir under a file", ("--data-dir", "{root}/f/sub", "jobs", "list"), _write("f", "x")),
        Case("store empty", ("jobs", "list"), _store(b""), "empty"),
        Case("store garbage", ("jobs", "list"), _store(b"garbage" * 1000), "msquant.sqlite3"),
        Case("store a folder", ("jobs", "list"), lambda root: (root / "d/data/msquant.sqlite3").mkdir(parents=True)),
        Case("settings not JSON", ("jobs", "run", "--", "true"), _write("d/config/settings.json", "{no"), "settings"),
        Case(
            "settings wrong type",
            ("jobs", "run", "--", "true"),
            _write("d/config/settings.json", '{"max_concurrent_jobs": "x"}'),
            "settings",
        ),
        Case(
            "settings deep",
            ("jobs", "run", "--", "true"),
            _write("d/config/settings.json", "[" * 100_000),
            "settings",
        ),
    ]


def _job_cases() -> list[Case]:
    return [
        Case("jobs run no command", ("jobs", "run", "--")),
        Case("jobs run missing cwd", ("jobs", "run", "--cwd", "{root}/none", "--", "true")),
        Case("jobs run name with newline", ("jobs", "run", "--name", "a\nb", "--", "true")),
    ]


def _model_cases() -> list[Case]:
    not_lm = _write("m/config.json", json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    return [
        Case("quantize missing model", ("quantize", "--model", "{root}/none", "--scheme", "W4A16", "--out", "{root}/o"), words="none"),
        Case("quantize a file as model", ("quantize", "--model", "{root}/f", "--scheme", "W4A16", "--out", "{root}/o"), _write("f", "x")),
        Case("quantize no config.json", ("quantize", "--model", "{root}/e", "--scheme", "W4A16", "--out", "{root}/o"), _write("e/x", "")),
        Case("quantize bad scheme", ("quantize", "--model", "{root}", "--scheme", "W3", "--out", "{root}/o"), words="invalid choice"),
        Case("quantize out is a file", ("quantize", "--model", "{root}/m", "--scheme", "W4A16", "--out", "{root}/f"), _write("f", "x")),
        Case("quantize samples 0", ("quantize", "--model", "{root}/m", "--scheme", "W4A16", "--out", "{root}/o", "--samples", "0")),
        Case("evaluate missing model", ("evaluate", "--model", "{root}/none"), words="none"),
        Case("evaluate not a causal LM", ("evaluate", "--model", "{root}/m"), not_lm),
        Case("evaluate hub text", ("evaluate", "--model", "{root}/none", "--text", "wikitext")),
        Case("evaluate seq-len 0", ("evaluate", "--model", "{root}", "--seq-len", "0")),
        Case("verify missing model", ("verify", "--model", "{root}/none"), words="none"),
        Case("demo-model out is a file", ("demo-model", "--size", "tiny", "--out", "{root}/f"), _write("f", "x")),
        Case("projects show missing", ("projects", "show", "{root}/none"), words="none"),
        Case("projects show a file", ("projects", "show", "{root}/f"), _write("f", "x")),
        Case("projects compose missing", ("projects", "compose", "{root}/none", "--", "a=1"), words="none"),
    ]


CASES = _cluster_cases() + _id_cases() + _number_cases() + _data_dir_cases() + _job_cases() + _model_cases()


def run_case(case: Case, root: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The case's command in a child process, in its own folder `root` (data dir `root/d` unless
    the case names one), with its files written first."""
    root.mkdir(parents=True)
    if case.setup is not None:
        case.setup(root)
    args = [a.replace("{root}", str(root)) for a in case.args]
    if "--data-dir" not in args:
        args = ["--data-dir", str(root / "d"), *args]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("MSQUANT_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", *args],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )


def _run(case: Case, root: Path) -> tuple[Case, subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = run_case(case, root)
    return case, done, time.monotonic() - started


def test_there_are_at_least_87_cases() -> None:
    assert len(CASES) >= 87, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.timeout(600)
def test_every_bad_input_gets_a_clear_line_and_no_traceback(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda ic: _run(ic[1], tmp_path / f"case{ic[0]}"), enumerate(CASES)))
    problems = []
    slowest = sorted(results, key=lambda r: -r[2])[:5]
    print("slowest:", ", ".join(f"{c.name} {t:.1f} s" for c, _, t in slowest))
    for case, done, _ in results:
        output = done.stdout + done.stderr
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        if "Traceback" in output:
            problems.append(f"{case.name}: traceback\n{done.stderr[-1500:]}")
        elif done.returncode == 0:
            problems.append(f"{case.name}: exit 0 ({output[-300:]!r})")
        elif not last:
            problems.append(f"{case.name}: exit {done.returncode} without a word on stderr")
        elif case.words and case.words not in last:
            problems.append(f"{case.name}: {case.words!r} not in the last line {last!r}")
    assert not problems, f"{len(problems)} of {len(CASES)} bad inputs:\n" + "\n".join(problems)
