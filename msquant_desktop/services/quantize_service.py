"""Quantization as the GUI sees it: checks off the GUI thread, worker detection, job specs, results.

Quantizations, verifications, evaluations and demo models are ordinary jobs of the local engine
(`JobService`);
this service builds their specs, lists finished quantizations from the store, and re-checks the
form's inputs (model folder, data, widths, memory) in a thread so the form never blocks.

Results are read in full once (`results()`); after that each job change updates one row
(`services/quantize_results.py`) and is announced by `sig_result_changed` / `sig_result_removed`.

"Compare schemes…" needs an evaluation to start after its quantization completes; the job engine has
no dependencies between jobs, so the quantize job carries the evaluation it wants in its meta
(`evaluate_after`) and this service queues it when the index sees that quantization completed without
an evaluation — on the change itself, or at the next load after a restart (the meta is in the store,
so nothing is lost when the app closes between the two).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from msquant_desktop.domain.evaluate import EvaluateRequest, evaluation_meta
from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState, JobSummary
from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.domain.quantize import SCHEMES_BY_ID, QuantizeRequest, default_output_name
from msquant_desktop.quantize.checks import CheckReport, check_request
from msquant_desktop.quantize.environment import WorkerEnvironment, detect_worker_environment
from msquant_desktop.quantize.evaluate_inputs import evaluation_problem
from msquant_desktop.quantize.hf_cache import CachedModel, CacheListing, cached_models, download_hint
from msquant_desktop.quantize.memory import MemoryEstimate, estimate_memory
from msquant_desktop.services.protocols import LocalJobs, SettingsSource
from msquant_desktop.services.quantize_results import (
    EVALUATE_AFTER_META_KEY,
    OTHER_KIND,
    ResultRow,
    ResultsIndex,
)

__all__ = [
    "CacheListing",
    "CachedModel",
    "CheckOutcome",
    "QuantizeService",
    "ResultRow",
    "download_hint",
    "cluster_evaluation_request",
    "evaluation_request",
    "run_check",
]

log = logging.getLogger(__name__)

DEFAULT_OUTPUT = f"{RUN_DIR_PLACEHOLDER}/quantized"
DEMO_OUTPUT = f"{RUN_DIR_PLACEHOLDER}/demo-model"


@dataclass(frozen=True)
class CheckOutcome:
    """A request and everything the form shows about it."""

    request: QuantizeRequest
    report: CheckReport
    memory: MemoryEstimate | None


def run_check(request: QuantizeRequest) -> CheckOutcome:
    """Blocking: the full pre-launch check plus a memory estimate when the model could be read."""
    report = check_request(request)
    memory = None
    if report.model is not None:
        memory = estimate_memory(report.model, request.scheme, request.samples, request.seq_len)
    return CheckOutcome(request, report, memory)


def _local_inputs(row: ResultRow) -> tuple[str, str | None]:
    """(model, original) of a result on this computer: its folder (a cluster result's downloaded
    copy) and the model it was quantized from (a cluster's path is no original here)."""
    folder = row.local_folder
    if folder is None:
        raise RuntimeError(f"job {row.job_id}'s output is on {row.cluster}: download it first")
    return folder, (row.result.model or None) if row.cluster is None else None


def evaluation_request(row: ResultRow, template: EvaluateRequest | None = None) -> EvaluateRequest:
    """The evaluation of a result's output against the model it was quantized from (`template` gives
    the text, window and speed options; its model and original are replaced)."""
    model, original = _local_inputs(row)
    return replace(template or EvaluateRequest(model=""), model=model, original=original)


def cluster_evaluation_request(row: ResultRow, template: EvaluateRequest | None = None) -> EvaluateRequest:
    """The evaluation of a cluster result on its cluster: its output there against the model the
    quantization job was asked to read there."""
    return replace(
        template or EvaluateRequest(model=""), model=row.result.output, original=row.original or None
    )


def _template_meta(template: EvaluateRequest) -> dict[str, Any]:
    meta = template.to_meta()
    meta.pop("model")
    meta.pop("original")
    return meta


def _template_from_meta(meta: dict[str, Any]) -> EvaluateRequest:
    """The inverse of `_template_meta` (a missing or odd value falls back to the default)."""
    base = EvaluateRequest(model="")
    max_windows = meta.get("max_windows")
    return EvaluateRequest(
        model="",
        texts=tuple(str(t) for t in meta.get("texts") or ()),
        seq_len=int(meta.get("seq_len") or base.seq_len),
        max_windows=int(max_windows) if isinstance(max_windows, int) else None,
        speed=bool(meta.get("speed", base.speed)),
        device=str(meta.get("device") or base.device),
    )


class QuantizeService(QObject):
    sig_checked = Signal(object)
    """A `CheckOutcome` for the request last passed to `check()` (older ones are dropped)."""
    sig_checked_all = Signal(object)
    """The list of `CheckOutcome`s of one `check_all()`, in the order of its requests."""
    sig_evaluation_checked = Signal(object, str)
    """(the `EvaluateRequest` last passed to `check_evaluation()`, its problem or "")."""
    sig_hf_cache = Signal(object)
    """The `CacheListing` of the local Hugging Face cache found by `scan_hf_cache()`."""
    sig_worker_environment = Signal(object)
    """The `WorkerEnvironment` found by `detect_worker()`."""
    sig_result_changed = Signal(object)
    """A `ResultRow` that appeared or changed (a quantization finished, its verification moved on)."""
    sig_result_removed = Signal(int)
    """(quantize job id) whose row is gone: the job was deleted or is no longer a finished quantization."""
    sig_demo_model_changed = Signal(object)
    """The `JobSummary` of a demo-model build submitted here, each time it changes (None: deleted)."""

    def __init__(
        self,
        jobs: LocalJobs,
        settings: SettingsSource,
        models_dir: Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._jobs = jobs
        self.models_dir = models_dir
        """Where models go by default (None: inside the job's run folder, as `{run_dir}/...`)."""
        self._settings = settings
        self._latest_check: QuantizeRequest | None = None
        self.worker: WorkerEnvironment | None = None
        self.hf_cache: CacheListing | None = None
        """The last listing of the Hugging Face cache (None until `scan_hf_cache()` finished once)."""
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._index = ResultsIndex()
        self._evaluations_queued: set[int] = set()  # quantize jobs whose evaluation this service queued
        self.evaluation_defaults = EvaluateRequest(model="")
        """Text, window and speed options of an evaluation the Results view's Evaluate button queues."""
        self._demo_builds: set[int] = set()  # demo-model jobs submitted here, followed until deleted
        jobs.sig_job_added.connect(self._on_job_touched)
        jobs.sig_job_changed.connect(self._on_job_touched)
        jobs.sig_job_removed.connect(self._on_job_removed)
        settings.sig_settings_changed.connect(lambda _s: self.detect_worker())
        self.sig_worker_environment.connect(self._on_worker_found)

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

    def check_evaluation(self, request: EvaluateRequest) -> None:
        """Check an evaluation's inputs in a thread (the worker's own rule); `sig_evaluation_checked`."""

        def work() -> None:
            try:
                problem = evaluation_problem(request)
            except Exception:
                log.exception("checking an evaluation request failed")
                return
            self.sig_evaluation_checked.emit(request, problem)

        self._in_thread("evaluate-check", work)

    def scan_hf_cache(self) -> None:
        """List the models in the local Hugging Face cache in a thread; `sig_hf_cache` follows."""

        def work() -> None:
            listing = cached_models()
            self.hf_cache = listing
            self.sig_hf_cache.emit(listing)

        self._in_thread("quantize-hf-cache", work)

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

    def submit(self, request: QuantizeRequest, evaluate_after: EvaluateRequest | None = None) -> JobRecord:
        """Queue a quantization; with `evaluate_after`, its evaluation is queued once it completes."""
        spec = self.quantize_spec(request)
        if evaluate_after is not None:
            spec = replace(spec, meta={**spec.meta, EVALUATE_AFTER_META_KEY: _template_meta(evaluate_after)})
        return self._jobs.submit(spec)

    def comparison_requests(
        self, model: str, schemes: list[str], dataset: str | None
    ) -> list[QuantizeRequest]:
        """One quantization per scheme of `model`, each into its own new folder; `dataset` goes only to
        the schemes that calibrate (with their default sample count and length)."""
        requests = []
        for scheme_id in schemes:
            scheme = SCHEMES_BY_ID[scheme_id]
            calibrates = scheme.needs_data and dataset
            requests.append(
                QuantizeRequest(
                    model=model,
                    scheme=scheme_id,
                    out=self.default_output(model, scheme_id),
                    dataset=dataset if calibrates else None,
                    samples=scheme.default_samples or 64,
                    seq_len=scheme.default_seq_len or 512,
                )
            )
        return requests

    def submit_comparison(
        self, requests: list[QuantizeRequest], evaluate: EvaluateRequest
    ) -> list[JobRecord]:
        """Queue each quantization with its evaluation to follow (the Compare schemes… button)."""
        return [self.submit(request, evaluate_after=evaluate) for request in requests]

    def check_all(self, requests: list[QuantizeRequest]) -> None:
        """Check several requests in one thread; `sig_checked_all` carries the outcomes (in order)."""

        def work() -> None:
            try:
                outcomes = [run_check(request) for request in requests]
            except Exception:
                log.exception("checking quantization requests failed")
                return
            self.sig_checked_all.emit(outcomes)

        self._in_thread("quantize-check-all", work)

    def default_output(self, model: str, scheme_id: str) -> str:
        """A new folder in the models folder for this model and scheme (`-2`, `-3`... when taken).

        Models live outside the jobs' run folders, so deleting a job never deletes its model."""
        if self.models_dir is None:
            return DEFAULT_OUTPUT
        return str(_free_folder(self.models_dir, default_output_name(model, scheme_id)))

    def submit_demo_model(self, size: str = "tiny") -> JobRecord:
        out = DEMO_OUTPUT if self.models_dir is None else str(_free_folder(self.models_dir, f"demo-{size}"))
        argv, env = self._command("demo-model", ["--size", size, "--out", out])
        spec = JobSpec(
            name=f"Build demo model ({size})",
            argv=argv,
            kind=JobKind.COMMAND,
            env=env,
            meta={"demo_model": size},
        )
        record = self._jobs.submit(spec)
        self._demo_builds.add(record.id)
        return record

    def submit_verify(self, row: ResultRow) -> JobRecord:
        model, original = _local_inputs(row)
        args = ["--model", model]
        if original:
            args += ["--original", original]
        argv, env = self._command("verify", args)
        spec = JobSpec(
            name=f"Verify {Path(model).name} (job {row.job_id})",
            argv=argv,
            kind=JobKind.VERIFY,
            env=env,
            meta={"verifies": row.job_id},
        )
        return self._jobs.submit(spec)

    def submit_evaluate(self, row: ResultRow, template: EvaluateRequest | None = None) -> JobRecord:
        """Queue an evaluation of a result against its original (a supervised job like verify)."""
        request = evaluation_request(row, template or self.evaluation_defaults)
        name = f"Evaluate {Path(row.result.output).name} (job {row.job_id})"
        return self.submit_evaluation(request, evaluates=row.job_id, name=name)

    def submit_evaluation(
        self, request: EvaluateRequest, evaluates: int | None = None, name: str = ""
    ) -> JobRecord:
        """Queue an evaluation; with `evaluates` (a quantize job id) it shows on that result's row."""
        argv, env = self._command("evaluate", request.to_args())
        spec = JobSpec(
            name=name or f"Evaluate {Path(request.model).name}",
            argv=argv,
            kind=JobKind.EVALUATE,
            env=env,
            meta=evaluation_meta(evaluates, request),
        )
        return self._jobs.submit(spec)

    def _queue_due_evaluations(self) -> None:
        """Queue the evaluation each completed quantization asked for and has not got yet."""
        for job_id, asked in self._index.evaluations_due():
            row = self._index.row(job_id)
            if row is None or job_id in self._evaluations_queued:
                continue
            self._evaluations_queued.add(job_id)  # before submit: its sig_job_added re-enters us
            try:
                record = self.submit_evaluate(row, _template_from_meta(asked))
            except RuntimeError as exc:  # no worker Python (yet): tried again when one is found
                self._evaluations_queued.discard(job_id)
                log.warning("could not queue the evaluation of job %s: %s", job_id, exc)
                continue
            log.info("queued evaluation job %s after quantization job %s", record.id, job_id)

    def latest_demo_model(self) -> str | None:
        """Output folder of the newest finished demo-model job whose folder still exists."""
        for record in [] if self._closed else self._jobs.list_jobs():
            if record.spec.meta.get("demo_model") and record.state is JobState.COMPLETED:
                output = (record.result or {}).get("output")
                if output and Path(output).is_dir():
                    return str(output)
        return None

    def results(self) -> list[ResultRow]:
        """Finished quantizations, newest first, each with its newest verification (one full read;
        later changes arrive row by row through `sig_result_changed` / `sig_result_removed`)."""
        if self._closed:
            return []
        rows = self._index.load(self._jobs.list_jobs())
        self._queue_due_evaluations()
        return rows

    def delete_result(self, row: ResultRow) -> None:
        """Delete the quantized model folder and forget its job; both folders go on a thread."""
        output = Path(row.result.output)
        model = (output,) if output.is_dir() and (output / "config.json").is_file() else ()
        if self._jobs.get(row.job_id).spec.cluster:
            model = ()  # its output is a path on the cluster: a local folder of that name is not it
        self._jobs.delete(row.job_id, also_remove=model)  # sig_job_removed takes the row away

    @Slot(int)
    def _on_job_touched(self, job_id: int) -> None:
        """A job was added or changed: update its row, or the row of the model it checks."""
        if job_id in self._demo_builds and not self._closed:
            demo = self._summary(job_id)
            if demo is None:
                self._demo_builds.discard(job_id)
            self.sig_demo_model_changed.emit(demo)
        if self._closed or not self._index.loaded:
            return  # nobody has asked for results yet: nothing to keep up to date
        kind = self._index.kind(job_id)
        summary: JobSummary | None = None
        if kind is None:  # newer than the load: one light read says what it is
            summary = self._summary(job_id)
            if summary is None:
                self._on_job_removed(job_id)
                return
            kind = self._index.note_kind(job_id, summary.kind)
        if kind == OTHER_KIND:
            return
        if kind == JobKind.QUANTIZE.value:
            summary = summary or self._summary(job_id)
            completed = summary is not None and summary.state is JobState.COMPLETED
            record = self._jobs.get(job_id) if completed else None
            self._announce(self._index.update_quantization(job_id, record))
            if record is not None:
                self._queue_due_evaluations()
        else:
            try:
                record = self._jobs.get(job_id)
            except KeyError:
                self._on_job_removed(job_id)
                return
            self._announce(self._index.update_check(record))

    @Slot(object)
    def _on_worker_found(self, _environment: WorkerEnvironment) -> None:
        """An evaluation asked for while no worker Python was known (the load at start-up comes before
        the detection) is queued now."""
        if not self._closed and self._index.loaded:
            self._queue_due_evaluations()

    @Slot(int)
    def _on_job_removed(self, job_id: int) -> None:
        if job_id in self._demo_builds:
            self._demo_builds.discard(job_id)
            self.sig_demo_model_changed.emit(None)
        if not self._closed and self._index.loaded:
            self._announce(self._index.forget(job_id))

    def _summary(self, job_id: int) -> JobSummary | None:
        try:
            return self._jobs.summary(job_id)
        except KeyError:
            return None

    def _announce(self, job_id: int | None) -> None:
        if job_id is None:
            return
        row = self._index.row(job_id)
        if row is None:
            self.sig_result_removed.emit(job_id)
        else:
            self.sig_result_changed.emit(row)


def _free_folder(parent: Path, name: str) -> Path:
    """`parent/name`, or `name-2`, `name-3`... : the first that does not exist yet."""
    candidate, n = parent / name, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{name}-{n}"
    return candidate
