"""Finished quantizations with the jobs that checked them: evaluations (meta "evaluates": quantize job id)
and verifications (meta "verifies").  Pure: one pass over job records.  Standard library only.

The rule for which check a row shows is the Results view's: the newest finished one (a newer failure
hides an older success, so the user sees that the last try failed); any unfinished one marks the row as
still being checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msquant_desktop.domain.evaluate import EVALUATES_META_KEY, evaluation_target, perplexity_delta
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState
from msquant_desktop.domain.quantize import QuantizeResult

VERIFIES_META_KEY = "verifies"
LOCAL_COPY_KEY = "local_copy"
"""A cluster quantization's result key: the local folder its output was downloaded to, once whole."""


def local_copy_of(result: dict[str, Any]) -> str | None:
    """The local copy a quantization's result records (None: never downloaded)."""
    value = result.get(LOCAL_COPY_KEY)
    return str(value) if value else None


def check_entry(record: JobRecord) -> dict[str, Any] | None:
    """What a verification or evaluation job says of its target: None while it has not ended, its
    result event when it completed, else {"failed": how it ended}."""
    if not record.state.is_final:
        return None
    if record.state is JobState.COMPLETED and record.result:
        return record.result
    return {"failed": record.outcome.describe() if record.outcome else "failed"}


def newest_finished(entries: dict[int, dict[str, Any] | None]) -> tuple[int | None, dict[str, Any] | None]:
    """(job id, entry) of the newest finished check among {job id: entry}; (None, None) when none."""
    done = [job_id for job_id, entry in entries.items() if entry is not None]
    if not done:
        return None, None
    newest = max(done)
    return newest, entries[newest]


def output_label(output: str, cluster: str | None, local_copy: str | None = None) -> str:
    """Where a result is, as Results and `results` show it: a path here, or `CLUSTER:PATH` (a path on
    that cluster) with the folder it was downloaded to."""
    if not cluster:
        return output
    return f"{cluster}:{output}" + (f" (copy in {local_copy})" if local_copy else "")


def _verification_target(meta: dict[str, Any]) -> int | None:
    value = meta.get(VERIFIES_META_KEY)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _number(value: Any, fmt: str, missing: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) and not isinstance(value, bool) else missing


def evaluation_cells(evaluation: dict[str, Any] | None, missing: str = "-") -> tuple[str, str, str, str]:
    """(perplexity, Δ vs the original, decode tok/s at batch 1, peak MiB) of an evaluation entry as
    the Results view and the `results` CLI show them; `missing` for a figure not known (a failed
    evaluation has none)."""
    figures = evaluation if evaluation and "failed" not in evaluation else {}
    return (
        _number(figures.get("perplexity"), ".4f", missing),
        _number(perplexity_delta(figures), "+.4f", missing),
        _number(figures.get("decode_tokens_per_s"), ".1f", missing),
        _number(figures.get("peak_memory_mib"), ".0f", missing),
    )


@dataclass(frozen=True)
class ResultListing:
    """One finished quantization and the newest evaluation and verification of its output."""

    job_id: int
    result: QuantizeResult
    event: dict[str, Any]
    """The quantization's whole result event (every key the worker reported)."""
    finished_at: str
    evaluation: dict[str, Any] | None = None
    evaluation_job_id: int | None = None
    evaluating: bool = False
    verification: dict[str, Any] | None = None
    verification_job_id: int | None = None
    verifying: bool = False

    @property
    def cluster(self) -> str | None:
        """The cluster it ran on (its output path is that cluster's); None for a local one."""
        value = self.event.get("cluster")
        return str(value) if value else None

    @property
    def local_copy(self) -> str | None:
        """Where a cluster result was downloaded to (None: never, or a local result)."""
        return local_copy_of(self.event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "cluster": self.cluster,
            "finished_at": self.finished_at,
            "model": self.result.model,
            "scheme": self.result.scheme,
            "output": self.result.output,
            "local_copy": self.local_copy,
            "size_before": self.result.size_before,
            "size_after": self.result.size_after,
            "quantize_s": self.result.duration_s,
            "quantize": self.event,
            "evaluation_job_id": self.evaluation_job_id,
            "evaluation": self.evaluation,
            "evaluating": self.evaluating,
            "verification_job_id": self.verification_job_id,
            "verification": self.verification,
            "verifying": self.verifying,
        }


def result_listings(records: list[JobRecord]) -> list[ResultListing]:
    """Every COMPLETED quantization with a result, newest first, each with its checks."""
    quantizations: dict[int, tuple[QuantizeResult, JobRecord]] = {}
    evaluations: dict[int, dict[int, dict[str, Any] | None]] = {}
    verifications: dict[int, dict[int, dict[str, Any] | None]] = {}
    for record in records:
        kind = record.spec.kind
        if kind is JobKind.QUANTIZE and record.state is JobState.COMPLETED:
            result = QuantizeResult.from_event(record.result or {})
            if result is not None:
                quantizations[record.id] = (result, record)
        elif kind is JobKind.EVALUATE:
            target = evaluation_target(record.spec.meta)
            if target is not None:
                evaluations.setdefault(target, {})[record.id] = check_entry(record)
        elif kind is JobKind.VERIFY:
            target = _verification_target(record.spec.meta)
            if target is not None:
                verifications.setdefault(target, {})[record.id] = check_entry(record)
    listings = []
    for job_id in sorted(quantizations, reverse=True):
        result, record = quantizations[job_id]
        evals = evaluations.get(job_id, {})
        checks = verifications.get(job_id, {})
        eval_id, evaluation = newest_finished(evals)
        check_id, verification = newest_finished(checks)
        finished = record.finished_at.isoformat(timespec="seconds") if record.finished_at else ""
        listings.append(
            ResultListing(
                job_id=job_id,
                result=result,
                event=dict(record.result),
                finished_at=finished,
                evaluation=evaluation,
                evaluation_job_id=eval_id,
                evaluating=any(entry is None for entry in evals.values()),
                verification=verification,
                verification_job_id=check_id,
                verifying=any(entry is None for entry in checks.values()),
            )
        )
    return listings


__all__ = [
    "EVALUATES_META_KEY",
    "LOCAL_COPY_KEY",
    "VERIFIES_META_KEY",
    "ResultListing",
    "check_entry",
    "evaluation_cells",
    "local_copy_of",
    "newest_finished",
    "output_label",
    "result_listings",
]
