"""The Results list (finished quantizations and their verifications), kept up to date one job at a time.

Qt-free bookkeeping for `QuantizeService`: loaded once from every job, then told about each job that
was added, changed or removed.  A job's kind never changes and job ids are never reused (the jobs
table is AUTOINCREMENT), so once loaded, a job known to be neither a quantization nor a verification
is ignored without any store read, and one newer than the load needs one light summary read to be
known.  Each update answers with the one quantization row it changed, so the view updates that row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobState
from msquant_desktop.domain.quantize import QuantizeResult

_QUANTIZE = JobKind.QUANTIZE.value
_VERIFY = JobKind.VERIFY.value
OTHER_KIND = ""
"""What `ResultsIndex.kind` says of a job known to be neither a quantization nor a verification."""


@dataclass(frozen=True)
class ResultRow:
    """One finished quantization, with its latest verification (if any)."""

    job_id: int
    result: QuantizeResult
    finished_at: str
    verification: dict[str, Any] | None = None
    verifying: bool = False

    @property
    def output_exists(self) -> bool:
        return Path(self.result.output).is_dir()


def _verification_entry(record: JobRecord) -> dict[str, Any] | None:
    """What a verification job says of its target: None while it runs, else its result or failure."""
    if not record.state.is_final:
        return None
    if record.state is JobState.COMPLETED and record.result:
        return record.result
    return {"failed": record.outcome.describe() if record.outcome else "failed"}


class ResultsIndex:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.loaded = False
        self._loaded_upto = 0  # the newest job id of the full load: older ids are all known
        self._kinds: dict[int, str] = {}  # quantizations and verifications; every kind for newer ids
        self._results: dict[int, tuple[QuantizeResult, str]] = {}  # quantize job -> (result, finished)
        self._targets: dict[int, int] = {}  # verification job -> the quantize job it checks
        self._checks: dict[int, dict[int, dict[str, Any] | None]] = {}  # target -> {verification: entry}

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
            elif record.spec.kind is JobKind.VERIFY:
                self._set_check(record)
        return self.rows()

    def rows(self) -> list[ResultRow]:
        return [row for row in (self.row(i) for i in sorted(self._results, reverse=True)) if row]

    def row(self, job_id: int) -> ResultRow | None:
        """The row of a finished quantization (None when `job_id` has none)."""
        found = self._results.get(job_id)
        if found is None:
            return None
        result, finished = found
        checks = self._checks.get(job_id, {})
        done = [i for i, entry in checks.items() if entry is not None]
        verification = checks[max(done)] if done else None
        verifying = any(entry is None for entry in checks.values())
        return ResultRow(job_id, result, finished, verification, verifying)

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

    def update_verification(self, record: JobRecord) -> int | None:
        """A verification changed; returns the quantize job whose row changed (None if none)."""
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
            self._checks.pop(job_id, None)
            return job_id if self._results.pop(job_id, None) is not None else None
        target = self._targets.pop(job_id, None)
        if target is None:
            return None
        before = self.row(target)
        self._checks.get(target, {}).pop(job_id, None)
        return target if self.row(target) != before else None

    # -- internals ------------------------------------------------------------------------------------
    def _note_kind(self, job_id: int, kind: str, every_kind: bool = False) -> str:
        kind = kind if kind in (_QUANTIZE, _VERIFY) else OTHER_KIND
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
        self._results[record.id] = (result, finished)

    def _set_check(self, record: JobRecord) -> int | None:
        target = record.spec.meta.get("verifies")
        if target is None:
            return None
        target = int(target)
        self._targets[record.id] = target
        self._checks.setdefault(target, {})[record.id] = _verification_entry(record)
        return target
