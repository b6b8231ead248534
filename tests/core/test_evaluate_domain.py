"""Evaluation's pure rules: perplexity windows, the result's shape, arguments, and how results join."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from msquant_desktop.domain.evaluate import (
    REQUIRED_RESULT_KEYS,
    EvaluateRequest,
    EvaluationInputError,
    evaluation_meta,
    evaluation_target,
    perplexity_delta,
    perplexity_from_nll,
    perplexity_windows,
    predicted_tokens,
    request_problems,
    result_problems,
)
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState
from msquant_desktop.domain.results import result_listings
from msquant_desktop.quantize.args import add_evaluate_arguments, evaluate_request_from_args


def test_windows_are_non_overlapping_full_windows_and_the_partial_tail_is_dropped() -> None:
    assert perplexity_windows(10, 4) == [(0, 4), (4, 8)]
    assert perplexity_windows(12, 4) == [(0, 4), (4, 8), (8, 12)]
    assert perplexity_windows(12, 4, max_windows=2) == [(0, 4), (4, 8)]
    assert perplexity_windows(12, 4, max_windows=9) == [(0, 4), (4, 8), (8, 12)]
    assert predicted_tokens(perplexity_windows(10, 4)) == 6  # each window predicts all but its first


def test_a_text_shorter_than_one_window_is_refused_with_both_lengths() -> None:
    with pytest.raises(EvaluationInputError, match="is 100 tokens long, shorter than one window of 512"):
        perplexity_windows(100, 512)


def test_perplexity_is_exp_of_the_mean_nll() -> None:
    assert perplexity_from_nll(0.0, 10) == 1.0
    assert perplexity_from_nll(10 * math.log(7.5), 10) == pytest.approx(7.5)


def _result(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = dict.fromkeys(REQUIRED_RESULT_KEYS)
    event |= {
        "type": "result",
        "kind": "evaluate",
        "perplexity": 3.2,
        "tokens_evaluated": 511,
        "seq_len": 512,
    }
    return event | changes


def test_result_shape() -> None:
    assert result_problems(_result()) == []
    assert result_problems(_result(original_perplexity=3.0, top1_agreement=0.97, kl_divergence=0.01)) == []
    assert perplexity_delta(_result(original_perplexity=3.0)) == pytest.approx(0.2)
    assert perplexity_delta(_result()) is None
    bad = _result(perplexity=float("nan"), top1_agreement=1.5, tokens_evaluated=0)
    problems = "\n".join(result_problems(bad))
    assert "perplexity must be a finite number" in problems
    assert "top1_agreement must be within [0, 1]" in problems and "tokens_evaluated" in problems
    missing = _result()
    del missing["decode_tokens_per_s_batch8"]
    assert result_problems(missing) == ["missing key 'decode_tokens_per_s_batch8'"]


def test_request_survives_the_command_line() -> None:
    request = EvaluateRequest(
        "/m/q", "/m/o", ("/t/a.txt", "/t/dir"), seq_len=256, max_windows=4, speed=False, device="cpu"
    )
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    assert evaluate_request_from_args(parser.parse_args(request.to_args())) == request
    assert evaluate_request_from_args(parser.parse_args(["--model", "/m"])) == EvaluateRequest("/m")
    assert request_problems(EvaluateRequest("/m", seq_len=4, max_windows=0)) == [
        "--seq-len must be at least 8 tokens (got 4)",
        "--max-windows must be at least 1 (got 0)",
    ]


def test_an_evaluation_job_points_at_its_quantization() -> None:
    meta = evaluation_meta(7, EvaluateRequest("/m/q", "/m/o"))
    assert meta["evaluates"] == 7 and meta["evaluate"]["original"] == "/m/o"
    assert evaluation_target(meta) == 7
    assert evaluation_target(evaluation_meta(None, EvaluateRequest("/m"))) is None


def _record(
    job_id: int, kind: JobKind, state: JobState, meta: dict[str, Any], result: dict[str, Any]
) -> JobRecord:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    return JobRecord(
        id=job_id,
        spec=JobSpec(name=f"job {job_id}", argv=("x",), kind=kind, meta=meta),
        state=state,
        created_at=when,
        finished_at=when if state.is_final else None,
        exit_code=1 if state is JobState.FAILED else 0,
        result=result,
    )


QUANTIZED = {
    "type": "result",
    "kind": "quantize",
    "output": "/runs/q",
    "model": "/models/demo",
    "scheme": "W4A16",
    "size_before": 16_000_000,
    "size_after": 5_000_000,
    "duration_s": 12.0,
}


def test_each_quantization_shows_its_newest_finished_evaluation() -> None:
    done, failed, running = JobState.COMPLETED, JobState.FAILED, JobState.RUNNING
    records = [
        _record(1, JobKind.QUANTIZE, done, {}, QUANTIZED),
        _record(2, JobKind.QUANTIZE, failed, {}, {}),
        _record(3, JobKind.EVALUATE, done, {"evaluates": 1}, _result(perplexity=2.4)),
        _record(4, JobKind.VERIFY, done, {"verifies": 1}, {"type": "result", "kind": "verify"}),
        _record(5, JobKind.EVALUATE, done, {}, _result(perplexity=9.9)),  # free-standing: no row
        _record(6, JobKind.QUANTIZE, done, {}, QUANTIZED | {"output": "/runs/q6"}),
        _record(7, JobKind.EVALUATE, failed, {"evaluates": 6}, {}),
        _record(8, JobKind.EVALUATE, running, {"evaluates": 6}, {}),
    ]
    first, second = result_listings(records)[::-1]
    assert [first.job_id, second.job_id] == [1, 6]  # newest first, the failed quantization has no row
    assert first.evaluation_job_id == 3 and first.evaluation is not None
    assert first.evaluation["perplexity"] == 2.4 and not first.evaluating
    assert first.verification_job_id == 4
    assert second.evaluation == {"failed": "exit 1"} and second.evaluating
    assert second.to_dict()["quantize"]["output"] == "/runs/q6"
    # A newer success replaces the failure.
    records.append(_record(9, JobKind.EVALUATE, done, {"evaluates": 6}, _result(perplexity=2.5)))
    newest = result_listings(records)[0]
    assert newest.evaluation_job_id == 9 and newest.evaluation is not None
    assert newest.evaluation["perplexity"] == 2.5


def test_an_evaluation_refused_or_oom_killed_says_so() -> None:
    from msquant_desktop.domain.runs import ExitRecord, outcome_from_exit

    refused = outcome_from_exit(ExitRecord(returncode=2), JobKind.EVALUATE)
    assert refused.state is JobState.FAILED and "inputs have problems" in refused.reason
    killed = outcome_from_exit(ExitRecord(returncode=-9), JobKind.EVALUATE)
    assert killed.state is JobState.KILLED and "OOM killer" in killed.reason
