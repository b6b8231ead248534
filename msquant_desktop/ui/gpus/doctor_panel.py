"""The Doctor panel: what is wrong (orphans, lost memory, throttling) and, after asking, clean-up."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.gpu import CleanupOutcome, DoctorReport, Finding, FindingKind
from msquant_desktop.services.gpu_service import GpuService

_KIND_WORDS = {
    FindingKind.ORPHAN: "Orphan",
    FindingKind.REPARENTED_GPU_HOLDER: "Re-parented",
    FindingKind.UNOWNED_MEMORY: "Memory",
    FindingKind.THROTTLING: "Throttling",
    FindingKind.GPU_LOST: "GPU lost",
}

Confirm = Callable[[QWidget, str], bool]


def ask_user(parent: QWidget, question: str) -> bool:
    answer = QMessageBox.question(
        parent,
        "End these processes?",
        question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


class DoctorPanel(QWidget):
    def __init__(
        self, service: GpuService, parent: QWidget | None = None, confirm: Confirm = ask_user
    ) -> None:
        super().__init__(parent)
        self._service = service
        self.confirm = confirm
        self.report: DoctorReport | None = None
        self.grace_s = 5.0

        self.run_button = QPushButton("Run doctor")
        self.run_button.setToolTip("Look for orphaned job processes, GPU memory nobody holds and throttling")
        self.clean_button = QPushButton("Clean up orphans…")
        self.clean_button.setEnabled(False)
        self.clean_button.setToolTip("End the orphans' process trees (TERM, then KILL after a grace period)")
        self.status = QLabel("Not run yet.")
        self.status.setWordWrap(True)
        self.findings = QListWidget()
        self.findings.setAlternatingRowColors(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.clean_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.findings, 1)

        self.run_button.clicked.connect(self.run)
        self.clean_button.clicked.connect(self.clean)
        service.sig_doctor_report.connect(self._on_report)
        service.sig_cleanup_finished.connect(self._on_cleaned)

    @Slot()
    def run(self) -> None:
        self.run_button.setEnabled(False)
        self.status.setText("Looking…")
        self._service.run_doctor()

    @Slot(object)
    def _on_report(self, report: DoctorReport) -> None:
        self.report = report
        self.run_button.setEnabled(True)
        self.findings.clear()
        for finding in report.findings:
            item = QListWidgetItem(f"{_KIND_WORDS[finding.kind]}: {finding.message}")
            if finding.command:
                item.setToolTip(finding.command)
            item.setData(Qt.ItemDataRole.UserRole, finding.pid)
            self.findings.addItem(item)
        cleanable = report.cleanable
        self.clean_button.setEnabled(bool(cleanable))
        if report.healthy:
            self.status.setText(f"Nothing wrong found. {report.gpu_status}.")
        else:
            self.status.setText(
                f"{len(report.findings)} finding(s), {len(cleanable)} process tree(s) can be cleaned up. "
                f"{report.gpu_status}."
            )

    def _question(self, cleanable: tuple[Finding, ...]) -> str:
        lines = [f"• pid {f.pid}: {f.command[:80] or '?'}" for f in cleanable[:15]]
        if len(cleanable) > 15:
            lines.append(f"… and {len(cleanable) - 15} more")
        return (
            "These processes and all their children will get SIGTERM, and SIGKILL after "
            f"{self.grace_s:g} s if they are still running:\n\n" + "\n".join(lines)
        )

    @Slot()
    def clean(self) -> None:
        if self.report is None or not self.report.cleanable:
            return
        cleanable = self.report.cleanable
        if not self.confirm(self, self._question(cleanable)):
            self.status.setText("Clean-up cancelled; nothing was touched.")
            return
        self.clean_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.status.setText(f"Ending {len(cleanable)} process tree(s)…")
        self._service.clean_up(list(cleanable), self.grace_s)

    @Slot(object)
    def _on_cleaned(self, outcomes: list[CleanupOutcome]) -> None:
        self.run_button.setEnabled(True)
        self.status.setText("Clean-up done: " + "; ".join(o.describe() for o in outcomes))
        self.findings.clear()
        self.report = None
