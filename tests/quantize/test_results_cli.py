"""`msquant-desktop results`: finished quantizations with their evaluations, read from a real store.

The result events are recorded from real runs (fixtures/demo_tiny_w4a16_results.json: the tiny demo
model quantized with W4A16, then `evaluate --model <quantized> --original <demo> --json`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from msquant_desktop.config.paths import resolve_paths
from msquant_desktop.domain.evaluate import EvaluateRequest, evaluation_meta, result_problems
from msquant_desktop.domain.jobs import JobKind, JobSpec, JobState
from msquant_desktop.store import connect
from msquant_desktop.store.jobs_repo import JobRepository
from tests.quantize.conftest import run_cli

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "demo_tiny_w4a16_results.json").read_text())


def _finished(
    repo: JobRepository, spec: JobSpec, state: JobState, result: dict[str, Any] | None = None
) -> int:
    job = repo.create(spec)
    repo.transition(job.id, JobState.STARTING)
    repo.transition(job.id, JobState.RUNNING)
    repo.transition(job.id, state, exit_code=0 if state is JobState.COMPLETED else 2, result=result or {})
    return job.id


def test_results_lists_quantizations_with_their_newest_evaluation(tmp_path: Path) -> None:
    assert result_problems(RECORDED["evaluate"]) == []
    data = tmp_path / "data"
    code, _, out, err = run_cli("--data-dir", str(data), "results")
    assert code == 0 and out.startswith("no finished quantizations yet"), err

    conn = connect(resolve_paths(data).database)  # the store the CLI just created
    repo = JobRepository(conn)
    quantize = JobSpec("Quantize demo (W4A16)", ("msquant-desktop", "quantize"), kind=JobKind.QUANTIZE)
    first = _finished(repo, quantize, JobState.COMPLETED, RECORDED["quantize"])
    request = EvaluateRequest(RECORDED["quantize"]["output"], RECORDED["quantize"]["model"])
    evaluate = JobSpec(
        "Evaluate",
        ("msquant-desktop", "evaluate"),
        kind=JobKind.EVALUATE,
        meta=evaluation_meta(first, request),
    )
    evaluation = _finished(repo, evaluate, JobState.COMPLETED, RECORDED["evaluate"])
    second = _finished(repo, quantize, JobState.COMPLETED, RECORDED["quantize"] | {"scheme": "W8A16"})
    failed = _finished(repo, dataclasses.replace(evaluate, meta={"evaluates": second}), JobState.FAILED)
    _finished(repo, quantize, JobState.FAILED)  # no result: not listed
    conn.close()

    code, _, out, err = run_cli("--data-dir", str(data), "results", "--json")
    assert code == 0, err
    rows = json.loads(out)["results"]
    assert [r["job_id"] for r in rows] == [second, first]
    assert rows[0]["scheme"] == "W8A16" and rows[0]["evaluation"] == {"failed": "exit 2"}
    assert rows[0]["evaluation_job_id"] == failed and not rows[0]["evaluating"]
    assert rows[1]["evaluation_job_id"] == evaluation and rows[1]["evaluation"] == RECORDED["evaluate"]
    assert rows[1]["size_after"] == RECORDED["quantize"]["size_after"]

    code, _, out, err = run_cli("--data-dir", str(data), "results")
    assert code == 0, err
    header, newest, oldest = out.splitlines()
    assert header.split() == [
        "ID",
        "SCHEME",
        "SIZE",
        "PERPLEXITY",
        "Δ",
        "TOP-1",
        "DECODE_TOK/S",
        "PEAK_MIB",
        "EVALUATION",
        "OUTPUT",
    ]
    assert newest.split()[:3] == [str(second), "W8A16", "5.6"] and f"failed (job {failed})" in newest
    cells = oldest.split()
    e = RECORDED["evaluate"]
    assert cells[4:7] == [
        f"{e['perplexity']:.4f}",
        f"{e['perplexity'] - e['original_perplexity']:+.4f}",
        "96.4%",
    ]
    assert cells[7:11] == [
        f"{e['decode_tokens_per_s']:.1f}",
        f"{e['peak_memory_mib']:.0f}",
        "job",
        f"{evaluation}",
    ]
    assert cells[-1] == RECORDED["quantize"]["output"]
