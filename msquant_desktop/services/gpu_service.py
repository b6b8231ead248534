"""The GPU service: samples NVML and the host on its own thread, keeps the history, runs the doctor.

Threads: the sampler (a QTimer inside a worker QThread, so a slow NVML call never stalls the GUI) and
the doctor (scanning /proc and ending process trees can take seconds).  Results come back by queued
signals; the history ring buffers are written and read on the main thread only, so they need no lock.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from msquant_desktop.domain.gpu import MIN_SAMPLE_INTERVAL_S, DoctorReport, Finding, GpuReading
from msquant_desktop.domain.settings import Settings
from msquant_desktop.gpu.history import GpuHistory
from msquant_desktop.gpu.monitor import GpuMonitor
from msquant_desktop.procs.kill import StopResult, stop_tree
from msquant_desktop.services.gpu_doctor import clean_up, diagnose

log = logging.getLogger(__name__)

MIN_INTERVAL_S = MIN_SAMPLE_INTERVAL_S
DEFAULT_INTERVAL_S = 1.0
DEFAULT_HISTORY_S = 3600


def history_capacity(history_seconds: float, interval_s: float) -> int:
    return max(2, math.ceil(history_seconds / interval_s))


def summarize(reading: GpuReading | None) -> str:
    """The status bar's one-line GPU summary."""
    if reading is None:
        return "GPU: —"
    if reading.unavailable or not reading.gpus:
        return "GPU: none found"
    answering = [g for g in reading.gpus if g.error is None]
    utils = [g.utilization_gpu for g in answering if g.utilization_gpu is not None]
    used = sum(g.memory_used_bytes or 0 for g in answering)
    total = sum(g.memory_total_bytes or 0 for g in answering)
    parts = [f"GPU: {len(reading.gpus)}"]
    if utils:
        parts.append(f"{sum(utils) / len(utils):.0f}%")
    if total:
        parts.append(f"{used / 2**30:.0f}/{total / 2**30:.0f} GiB")
    if len(answering) < len(reading.gpus):
        parts.append(f"{len(reading.gpus) - len(answering)} lost")
    if any(g.throttle_words and set(g.throttle_words) - {"idle"} for g in answering):
        parts.append("throttled")
    return " · ".join(parts)


class _SamplerWorker(QObject):
    """Lives in the sampler thread; owns the monitor (and so the NVML handles) and the timer."""

    sig_reading = Signal(object)

    def __init__(self, nvml: Any | None, interval_s: float) -> None:
        super().__init__()
        self._nvml = nvml
        self._interval_ms = round(interval_s * 1000)
        self._monitor: GpuMonitor | None = None
        self._timer: QTimer | None = None

    @Slot()
    def start(self) -> None:
        self._monitor = GpuMonitor(self._nvml)
        self._timer = QTimer(self)
        self._timer.setObjectName("gpu-sampler")
        self._timer.setInterval(self._interval_ms)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._tick()

    @Slot(int)
    def set_interval_ms(self, interval_ms: int) -> None:
        self._interval_ms = interval_ms
        if self._timer is not None:
            self._timer.setInterval(interval_ms)

    @Slot()
    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._monitor is not None:
            self._monitor.close()

    @Slot()
    def _tick(self) -> None:
        assert self._monitor is not None
        try:
            reading = self._monitor.sample()
        except Exception:  # psutil or /proc trouble: log it, keep sampling
            log.exception("GPU sampling failed")
            return
        self.sig_reading.emit(reading)


class _DoctorWorker(QObject):
    sig_report = Signal(object)
    sig_cleaned = Signal(object)
    sig_terminated = Signal(int, str)

    @Slot(object)
    def diagnose(self, reading: GpuReading | None) -> None:
        try:
            report = diagnose(reading)
        except Exception as exc:
            log.exception("doctor failed")
            report = DoctorReport((), f"the doctor failed: {exc}")
        self.sig_report.emit(report)

    @Slot(object, float)
    def clean(self, findings: list[Finding], grace_s: float) -> None:
        self.sig_cleaned.emit(clean_up(findings, grace_s))

    @Slot(int, float, float)
    def terminate(self, pid: int, start_time: float, grace_s: float) -> None:
        try:
            result = stop_tree(pid, start_time, grace_s)
        except OSError as exc:
            self.sig_terminated.emit(pid, f"could not end process {pid}: {exc}")
            return
        self.sig_terminated.emit(pid, describe_termination(pid, result))


def describe_termination(pid: int, result: StopResult) -> str:
    """One line for the status label: what "Terminate…" did to the tree of `pid`."""
    if result.skipped:
        return f"Process {pid} was not touched: {result.skipped}"
    killed = f", {len(result.killed)} needed SIGKILL" if result.killed else ""
    left = f"; {len(result.survivors)} still running" if result.survivors else ""
    return f"Process {pid} and its children ended ({len(result.ended)} process(es){killed}){left}"


class GpuService(QObject):
    """Owner of GPU sampling, its history and the doctor, for the whole GUI process."""

    sig_reading = Signal(object)
    """A new `GpuReading`, already in `history`."""
    sig_summary_changed = Signal(str)
    """The status bar's GPU summary changed."""
    sig_doctor_report = Signal(object)
    """A `DoctorReport` asked for with `run_doctor()`."""
    sig_cleanup_finished = Signal(object)
    """The `CleanupOutcome`s of `clean_up()`."""
    sig_terminated = Signal(int, str)
    """(pid, what happened in words) after `terminate()`."""

    _sig_start = Signal()
    _sig_stop = Signal()
    _sig_set_interval = Signal(int)
    _sig_diagnose = Signal(object)
    _sig_clean = Signal(object, float)
    _sig_terminate = Signal(int, float, float)

    def __init__(
        self,
        interval_s: float = DEFAULT_INTERVAL_S,
        history_seconds: float = DEFAULT_HISTORY_S,
        nvml: Any | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._check_interval(interval_s)
        self.interval_s = interval_s
        self.history_seconds = history_seconds
        self.history = GpuHistory(history_capacity(history_seconds, interval_s))
        self.latest: GpuReading | None = None
        self._summary = summarize(None)
        self.samples_taken = 0

        self._sampler_thread = QThread(self)
        self._sampler_thread.setObjectName("gpu-sampler")
        self._sampler = _SamplerWorker(nvml, interval_s)
        self._sampler.moveToThread(self._sampler_thread)
        self._sig_start.connect(self._sampler.start)
        # Blocking: the timer must stop and NVML close in their own thread before the thread ends.
        self._sig_stop.connect(self._sampler.stop, Qt.ConnectionType.BlockingQueuedConnection)
        self._sig_set_interval.connect(self._sampler.set_interval_ms)
        self._sampler.sig_reading.connect(self._on_reading)
        self._sampler_thread.finished.connect(self._sampler.deleteLater)

        self._doctor_thread = QThread(self)
        self._doctor_thread.setObjectName("gpu-doctor")
        self._doctor = _DoctorWorker()
        self._doctor.moveToThread(self._doctor_thread)
        self._sig_diagnose.connect(self._doctor.diagnose)
        self._sig_clean.connect(self._doctor.clean)
        self._doctor.sig_report.connect(self.sig_doctor_report)
        self._doctor.sig_cleaned.connect(self.sig_cleanup_finished)
        self._sig_terminate.connect(self._doctor.terminate)
        self._doctor.sig_terminated.connect(self.sig_terminated)
        self._doctor_thread.finished.connect(self._doctor.deleteLater)
        self._running = False

    @staticmethod
    def _check_interval(interval_s: float) -> None:
        if interval_s < MIN_INTERVAL_S:
            raise ValueError(f"the GPU sample interval must be at least {MIN_INTERVAL_S} s, not {interval_s}")

    # -- life ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._sampler_thread.start()
        self._doctor_thread.start()
        self._sig_start.emit()

    def shutdown(self) -> None:
        if not self._running:
            return
        self._running = False
        # Stop the timer and close NVML in the thread that owns them, then let the threads end.
        self._sampler.sig_reading.disconnect(self._on_reading)
        if self._sampler_thread.isRunning():
            self._sig_stop.emit()
        for thread in (self._sampler_thread, self._doctor_thread):
            thread.quit()
            thread.wait()

    # -- settings ------------------------------------------------------------------------------------
    def set_interval(self, interval_s: float) -> None:
        """Change the sampling interval (at least 0.25 s); the history keeps `history_seconds`."""
        self._check_interval(interval_s)
        if interval_s == self.interval_s:
            return
        self.interval_s = interval_s
        self._resize_history()
        self._sig_set_interval.emit(round(interval_s * 1000))

    def set_history_seconds(self, seconds: float) -> None:
        if seconds == self.history_seconds:
            return
        self.history_seconds = seconds
        self._resize_history()

    def _resize_history(self) -> None:
        capacity = history_capacity(self.history_seconds, self.interval_s)
        if capacity != self.history.capacity:
            log.info("GPU history now holds %d samples; the old history is dropped", capacity)
            self.history = GpuHistory(capacity)

    @Slot(object)
    def apply_settings(self, settings: Settings) -> None:
        """Slot for SettingsService.sig_settings_changed."""
        self.set_interval(float(settings.gpu_sample_interval_seconds))
        self.set_history_seconds(float(settings.gpu_history_seconds))

    # -- doctor --------------------------------------------------------------------------------------
    def run_doctor(self) -> None:
        """Diagnose on the doctor thread; the report arrives as sig_doctor_report."""
        self._sig_diagnose.emit(self.latest)

    def clean_up(self, findings: list[Finding], grace_s: float = 5.0) -> None:
        """End the cleanable findings' process trees (the UI has asked the user); see sig_cleanup_finished."""
        self._sig_clean.emit(list(findings), float(grace_s))

    def terminate(self, pid: int, start_time: float, grace_s: float = 5.0) -> None:
        """End `pid` and its descendants as a job's cancel does — TERM, `grace_s`, then KILL
        (`procs.kill.stop_tree`) — on the doctor thread.  Only our own processes, and only the one
        that started at `start_time` (never a recycled pid); the UI has asked the user.
        `sig_terminated` follows."""
        self._sig_terminate.emit(int(pid), float(start_time), float(grace_s))

    # -- readings ------------------------------------------------------------------------------------
    @property
    def summary(self) -> str:
        return self._summary

    @Slot(object)
    def _on_reading(self, reading: GpuReading) -> None:
        self.latest = reading
        self.samples_taken += 1
        self.history.append(reading)
        self.sig_reading.emit(reading)
        summary = summarize(reading)
        if summary != self._summary:
            self._summary = summary
            self.sig_summary_changed.emit(summary)
