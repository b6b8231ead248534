"""The Results list (finished quantizations, their verifications and evaluations), kept up to date one
job at a time.

Qt-free bookkeeping for `QuantizeService`: loaded once from every job, then told about each job that
was added, changed or removed.  A job's kind never changes and job ids are never reused (the jobs
table is AUTOINCREMENT), so once loaded, a job known to be none of the three kinds is ignored without
any store read, and one newer than the load needs one light summary read to be known.  Each update
answers with the one quantization row it changed, so the view updates that row.

Which check a row shows is `domain/results.py`'s rule (the newest finished one), the same rule the
`results` CLI uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.evaluate import evaluation_target
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState
from msquant_desktop.domain.quantize import QuantizeResult
from msquant_desktop.domain.results import VERIFIES_META_KEY, check_entry, local_copy_of, newest_finished

_QUANTIZE = JobKind.QUANTIZE.value
_VERIFY = JobKind.VERIFY.value
_EVALUATE = JobKind.EVALUATE.value
_SHOWN_KINDS = (_QUANTIZE, _VERIFY, _EVALUATE)
_Facts = tuple[str | None, str | None, str, str]
"""(cluster, local copy, the model the job was asked for, the name to show for that model)"""
OTHER_KIND = ""
"""What `ResultsIndex.kind` says of a job known to be none of the kinds the Results list shows."""
EVALUATE_AFTER_META_KEY = "evaluate_after"
"""A quantize job's meta key: the evaluation (an `EvaluateRequest.to_meta()` without model and
original) to queue once the quantization completes ("Compare schemes…" sets it)."""


def hub_model_name(meta: dict[str, Any]) -> str:
    """`org/name` (`@rev` unless main) of a job whose model was a Hugging Face repo id; "" if not."""
    hub = (meta.get("hub_models") or {}).get("model")
    if not isinstance(hub, dict) or not hub.get("repo_id"):
        return ""
    revision = str(hub.get("revision") or "main")
    return str(hub["repo_id"]) + ("" if revision == "main" else f"@{revision}")


@dataclass(frozen=True)
class ResultRow:
    """One finished quantization, with its newest finished verification and evaluation (if any)."""

    job_id: int
    result: QuantizeResult
    finished_at: str
    verification: dict[str, Any] | None = None
    verifying: bool = False
    evaluation: dict[str, Any] | None = None
    evaluating: bool = False
    cluster: str | None = None
    """The cluster it ran on: its output (and `original`) are paths there; None for a local one."""
    local_copy: str | None = None
    """Of a cluster result: the local folder it was downloaded to (None: not downloaded)."""
    original: str = ""
    """The model it was quantized from, as the job was asked (the cluster's path for a cluster job)."""
    model_name: str = ""
    """How to name that model: its Hugging Face repo id (`org/name[@rev]`) when it was given as one
    (the job read a snapshot folder whose name is a commit hash), else the folder's name."""

    @property
    def local_folder(self) -> str | None:
        """The folder on this computer that holds the result (its copy, for a cluster result)."""
        return self.local_copy if self.cluster else self.result.output

    @property
    def output_exists(self) -> bool:
        """The result is there: on its cluster (not looked at from here), or its local folder."""
        return self.cluster is not None or Path(self.result.output).is_dir()

    @property
    def local_exists(self) -> bool:
        folder = self.local_folder
        return folder is not None and Path(folder).is_dir()

    @property
    def evaluated(self) -> dict[str, Any] | None:
        """The newest evaluation's figures when it completed (None when none did or the newest failed)."""
        return self.evaluation if self.evaluation and "failed" not in self.evaluation else None


def _check_target(record: JobRecord) -> int | None:
    if record.spec.kind is JobKind.EVALUATE:
        return evaluation_target(record.spec.meta)
    value = record.spec.meta.get(VERIFIES_META_KEY)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class ResultsIndex:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.loaded = False
        self._loaded_upto = 0  # the newest job id of the full load: older ids are all known
        self._kinds: dict[int, str] = {}  # the kinds shown; every kind for newer ids
        self._results: dict[int, tuple[QuantizeResult, str, _Facts]] = {}  # job -> (result, finished, ...)
        self._evaluate_after: dict[int, dict[str, Any]] = {}  # finished quantize job -> evaluation asked
        self._targets: dict[int, int] = {}  # verification or evaluation job -> the quantize job
        # target -> {check job: entry}, one map per check kind
        self._checks: dict[str, dict[int, dict[int, dict[str, Any] | None]]] = {_VERIFY: {}, _EVALUATE: {}}

    # -- full load ------------------------------------------------------------------------------------
    def load(self, records: list[JobRecord]) -> list[ResultRow]:
        """Start over from every job (any order); the rows come back newest first."""
        self._clear()
        self.loaded = True
        for record in records:
            self._loaded_upto = max(self._loaded_upto, record.id)
            self._note_kind(record.id, record.spec.kind.value)
            if record.spec.kind is JobKind.QUANTIZE:
                self._set_result(record)
            elif record.spec.kind in (JobKind.VERIFY, JobKind.EVALUATE):
                self._set_check(record)
        return self.rows()

    def rows(self) -> list[ResultRow]:
        return [row for row in (self.row(i) for i in sorted(self._results, reverse=True)) if row]

    def row(self, job_id: int) -> ResultRow | None:
        """The row of a finished quantization (None when `job_id` has none)."""
        found = self._results.get(job_id)
        if found is None:
            return None
        result, finished, (cluster, local_copy, original, model_name) = found
        checks = self._checks[_VERIFY].get(job_id, {})
        evaluations = self._checks[_EVALUATE].get(job_id, {})
        return ResultRow(
            job_id,
            result,
            finished,
            verification=newest_finished(checks)[1],
            verifying=any(entry is None for entry in checks.values()),
            evaluation=newest_finished(evaluations)[1],
            evaluating=any(entry is None for entry in evaluations.values()),
            cluster=cluster,
            local_copy=local_copy,
            original=original or result.model,
            model_name=model_name or result.model.rstrip("/").rsplit("/", 1)[-1],
        )

    def evaluations_due(self) -> list[tuple[int, dict[str, Any]]]:
        """(quantize job, evaluation asked) for each finished quantization whose meta asks for an
        evaluation after it and that has no evaluation job yet (queued once: any evaluation counts)."""
        return [
            (job_id, asked)
            for job_id, asked in sorted(self._evaluate_after.items())
            if job_id in self._results and not self._checks[_EVALUATE].get(job_id)
        ]

    # -- one job at a time ---------------------------------------------------------------------------
    def kind(self, job_id: int) -> str | None:
        """The job's kind, OTHER_KIND when it is known to be neither kind we show, None if unknown."""
        kind = self._kinds.get(job_id)
        if kind is not None:
            return kind
        return OTHER_KIND if job_id <= self._loaded_upto else None

    def note_kind(self, job_id: int, kind: str) -> str:
        """Remember a job newer than the load (its kind came from a summary)."""
        return self._note_kind(job_id, kind, every_kind=True)

    def update_quantization(self, job_id: int, record: JobRecord | None) -> int | None:
        """A quantization changed: its record when it is COMPLETED (None otherwise, unread).
        Returns the job id when its row appeared, changed or went, else None."""
        before = self.row(job_id)
        if record is None:
            self._results.pop(job_id, None)
        else:
            self._set_result(record)
        return job_id if self.row(job_id) != before else None

    def update_check(self, record: JobRecord) -> int | None:
        """A verification or evaluation changed; returns the quantize job whose row changed (None if
        none)."""
        target = self._targets.get(record.id)
        before = self.row(target) if target is not None else None
        target = self._set_check(record)
        if target is None:
            return None
        return target if self.row(target) != before else None

    def forget(self, job_id: int) -> int | None:
        """A job was deleted; returns the quantize job whose row changed or went (None if none)."""
        kind = self._kinds.pop(job_id, None)
        if kind == _QUANTIZE:
            for checks in self._checks.values():
                checks.pop(job_id, None)
            self._evaluate_after.pop(job_id, None)
            return job_id if self._results.pop(job_id, None) is not None else None
        target = self._targets.pop(job_id, None)
        if target is None or kind is None:
            return None
        before = self.row(target)
        self._checks[kind].get(target, {}).pop(job_id, None)
        return target if self.row(target) != before else None

    # -- internals ------------------------------------------------------------------------------------
    def _note_kind(self, job_id: int, kind: str, every_kind: bool = False) -> str:
        kind = kind if kind in _SHOWN_KINDS else OTHER_KIND
        if kind != OTHER_KIND or every_kind:
            self._kinds[job_id] = kind
        return kind

    def _set_result(self, record: JobRecord) -> None:
        result = (
            QuantizeResult.from_event(record.result or {}) if record.state is JobState.COMPLETED else None
        )
        if result is None:
            self._results.pop(record.id, None)
            return
        finished = record.finished_at.isoformat(timespec="seconds") if record.finished_at else ""
        asked_model = (record.spec.meta.get("quantize") or {}).get("model")
        facts = (
            record.spec.cluster,
            local_copy_of(record.result),
            str(asked_model or ""),
            hub_model_name(record.spec.meta),
        )
        self._results[record.id] = (result, finished, facts)
        asked = record.spec.meta.get(EVALUATE_AFTER_META_KEY)
        if isinstance(asked, dict):
            self._evaluate_after[record.id] = asked

    def _set_check(self, record: JobRecord) -> int | None:
        target = _check_target(record)
        if target is None:
            return None
        self._targets[record.id] = target
        kind = _EVALUATE if record.spec.kind is JobKind.EVALUATE else _VERIFY
        self._checks[kind].setdefault(target, {})[record.id] = check_entry(record)
        return target


@dataclass(frozen=True)
class ComparisonPoint:
    """One scheme of a base model in the comparison chart."""

    job_id: int
    scheme: str
    size_bytes: int
    perplexity: float


@dataclass(frozen=True)
class Comparison:
    """Every evaluated result of one base model: one point per scheme (its newest evaluated result)
    and the original's size and perplexity (from the newest evaluation that scored the original)."""

    base_model: str
    points: tuple[ComparisonPoint, ...]
    original_size: int | None
    original_perplexity: float | None
    text: str
    """What the perplexities were measured on: the newest evaluation's text file names ("" when none)."""
    seq_len: int | None


def base_models(rows: list[ResultRow]) -> list[str]:
    """The base models of the results, the one quantized most recently first."""
    seen: dict[str, None] = {}
    for row in sorted(rows, key=lambda r: -r.job_id):
        seen.setdefault(row.result.model, None)
    return list(seen)


def comparison(rows: list[ResultRow], base_model: str) -> Comparison:
    newest_first = sorted((r for r in rows if r.result.model == base_model), key=lambda r: -r.job_id)
    points: dict[str, ComparisonPoint] = {}
    original: tuple[int, float] | None = None
    text, seq_len = "", None
    for row in newest_first:
        figures = row.evaluated
        if figures is None or not isinstance(figures.get("perplexity"), int | float):
            continue
        if not text:
            files = figures.get("text_files")
            names = [Path(str(f)).name for f in files] if isinstance(files, list) else []
            text = ", ".join(names) or str(figures.get("text") or "")
            seq_len = figures.get("seq_len")
        if row.result.scheme not in points:
            points[row.result.scheme] = ComparisonPoint(
                row.job_id, row.result.scheme, row.result.size_after, float(figures["perplexity"])
            )
        reference = figures.get("original_perplexity")
        if original is None and isinstance(reference, int | float):
            original = (row.result.size_before, float(reference))
    ordered = tuple(sorted(points.values(), key=lambda p: p.size_bytes))
    return Comparison(
        base_model,
        ordered,
        original[0] if original else None,
        original[1] if original else None,
        text,
        seq_len if isinstance(seq_len, int) else None,
    )
