"""Quantization as the GUI sees it: checks off the GUI thread, worker detection, job specs, results.

Quantizations, verifications and demo models are ordinary jobs of the local engine (`JobService`);
this service builds their specs, lists finished quantizations from the store, and re-checks the
form's inputs (model folder, data, widths, memory) in a thread so the form never blocks.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState
from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.domain.quantize import (
    SCHEMES_BY_ID,
    QuantizeRequest,
    QuantizeResult,
    explain_worker_exit,
)
from msquant_desktop.domain.runs import ExitRecord
from msquant_desktop.quantize.checks import CheckReport, check_request
from msquant_desktop.quantize.environment import WorkerEnvironment, detect_worker_environment
from msquant_desktop.quantize.memory import MemoryEstimate, estimate_memory
from msquant_desktop.services.protocols import LocalJobs, SettingsSource

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = f"{RUN_DIR_PLACEHOLDER}/quantized"
DEMO_OUTPUT = f"{RUN_DIR_PLACEHOLDER}/demo-model"


@dataclass(frozen=True)
class CheckOutcome:
    """A request and everything the form shows about it."""

    request: QuantizeRequest
    report: CheckReport
    memory: MemoryEstimate | None


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


def run_check(request: QuantizeRequest) -> CheckOutcome:
    """Blocking: the full pre-launch check plus a memory estimate when the model could be read."""
    report = check_request(request)
    memory = None
    if report.model is not None:
        memory = estimate_memory(report.model, request.scheme, request.samples, request.seq_len)
    return CheckOutcome(request, report, memory)


class QuantizeService(QObject):
    sig_checked = Signal(object)
    """A `CheckOutcome` for the request last passed to `check()` (older ones are dropped)."""
    sig_worker_environment = Signal(object)
    """The `WorkerEnvironment` found by `detect_worker()`."""
    sig_results_changed = Signal()
    """The list of finished quantizations (or their verifications) changed."""

    def __init__(self, jobs: LocalJobs, settings: SettingsSource, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self._settings = settings
        self._latest_check: QuantizeRequest | None = None
        self.worker: WorkerEnvironment | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        jobs.sig_job_added.connect(self._on_job_touched)
        jobs.sig_job_changed.connect(self._on_job_touched)
        jobs.sig_job_removed.connect(self._on_job_touched)
        jobs.set_exit_explainer(JobKind.QUANTIZE.value, self._explain_exit)
        settings.sig_settings_changed.connect(lambda _s: self.detect_worker())

    # -- background work -----------------------------------------------------------------------------
    def _in_thread(self, name: str, work: Callable[[], None]) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def shutdown(self) -> None:
        """Stop announcing; called before the store closes so late refreshes find nothing to read."""
        self._closed = True
        self.wait_idle(5.0)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Join background checks (for shutdown and tests)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def check(self, request: QuantizeRequest) -> None:
        """Check `request` in a thread; `sig_checked` follows unless a newer check was asked meanwhile."""
        self._latest_check = request

        def work() -> None:
            try:
                outcome = run_check(request)
            except Exception:
                log.exception("checking a quantization request failed")
                return
            if self._latest_check == request:
                self.sig_checked.emit(outcome)

        self._in_thread("quantize-check", work)

    def detect_worker(self) -> None:
        """Find the worker Python in a thread; `sig_worker_environment` follows."""
        settings_python = self._settings.settings.worker_python

        def work() -> None:
            environment = detect_worker_environment(settings_python)
            self.worker = environment
            self.sig_worker_environment.emit(environment)

        self._in_thread("quantize-worker-detect", work)

    # -- jobs ----------------------------------------------------------------------------------------------
    def _command(
        self, subcommand: str, args: list[str]
    ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        if self.worker is None or not self.worker.available:
            raise RuntimeError(self.worker.message if self.worker else "the worker Python is not known yet")
        return self.worker.command(subcommand, *args)

    def quantize_spec(self, request: QuantizeRequest) -> JobSpec:
        argv, env = self._command("quantize", request.to_args())
        scheme = SCHEMES_BY_ID[request.scheme]
        return JobSpec(
            name=f"Quantize {Path(request.model).name} ({scheme.id})",
            argv=argv,
            kind=JobKind.QUANTIZE,
            env=env,
            meta={"quantize": request.to_meta()},
        )

    def submit(self, request: QuantizeRequest) -> JobRecord:
        return self._jobs.submit(self.quantize_spec(request))

    def submit_demo_model(self, size: str = "tiny") -> JobRecord:
        argv, env = self._command("demo-model", ["--size", size, "--out", DEMO_OUTPUT])
        spec = JobSpec(
            name=f"Build demo model ({size})",
            argv=argv,
            kind=JobKind.COMMAND,
            env=env,
            meta={"demo_model": size},
        )
        return self._jobs.submit(spec)

    def submit_verify(self, row: ResultRow) -> JobRecord:
        args = ["--model", row.result.output]
        if row.result.model:
            args += ["--original", row.result.model]
        argv, env = self._command("verify", args)
        spec = JobSpec(
            name=f"Verify {Path(row.result.output).name} (job {row.job_id})",
            argv=argv,
            kind=JobKind.VERIFY,
            env=env,
            meta={"verifies": row.job_id},
        )
        return self._jobs.submit(spec)

    def latest_demo_model(self) -> str | None:
        """Output folder of the newest finished demo-model job whose folder still exists."""
        for record in [] if self._closed else self._jobs.list_jobs():
            if record.spec.meta.get("demo_model") and record.state is JobState.COMPLETED:
                output = (record.result or {}).get("output")
                if output and Path(output).is_dir():
                    return str(output)
        return None

    def results(self) -> list[ResultRow]:
        """Finished quantizations, newest first, each with its newest verification."""
        if self._closed:
            return []
        records = self._jobs.list_jobs()
        verifications: dict[int, dict[str, Any]] = {}
        verifying: set[int] = set()
        for record in records:
            target = record.spec.meta.get("verifies") if record.spec.kind is JobKind.VERIFY else None
            if target is None:
                continue
            if record.state is JobState.COMPLETED and record.result:
                verifications.setdefault(int(target), record.result)
            elif not record.state.is_final:
                verifying.add(int(target))
            elif int(target) not in verifications:
                verifications[int(target)] = {
                    "failed": record.outcome.describe() if record.outcome else "failed"
                }
        rows = []
        for record in records:
            if record.spec.kind is not JobKind.QUANTIZE or record.state is not JobState.COMPLETED:
                continue
            result = QuantizeResult.from_event(record.result or {})
            if result is None:
                continue
            finished = record.finished_at.isoformat(timespec="seconds") if record.finished_at else ""
            rows.append(
                ResultRow(record.id, result, finished, verifications.get(record.id), record.id in verifying)
            )
        return rows

    def delete_result(self, row: ResultRow) -> None:
        """Delete the quantized model folder and forget its job (and the job's run folder)."""
        output = Path(row.result.output)
        if output.is_dir() and (output / "config.json").is_file():
            shutil.rmtree(output)
        self._jobs.delete(row.job_id)
        self.sig_results_changed.emit()

    @Slot(int)
    def _on_job_touched(self, job_id: int) -> None:
        if not self._closed:
            self.sig_results_changed.emit()

    def _explain_exit(self, job: JobRecord, exit_record: ExitRecord | None) -> str | None:
        if exit_record is None:
            return None
        return explain_worker_exit(exit_record.returncode, exit_record.cancelled)
