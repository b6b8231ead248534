"""Under the Results table: the download of a cluster result under way — what is copied, a bar of
bytes, the files whole so far, a resume after a cut, Cancel — and how it ended.  Non-modal: the
table stays usable while it runs (the copy runs on its own thread, `services/result_downloads.py`)."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from msquant_desktop.domain.quantize import human_bytes
from msquant_desktop.services.cluster_download import DownloadProgress
from msquant_desktop.services.result_downloads import ResultDownloads
from msquant_desktop.ui.colors import ERROR, text_style


def progress_text(p: DownloadProgress) -> str:
    return f"{human_bytes(p.done)} of {human_bytes(p.total)} · {p.files_done} of {p.files} files"


class DownloadStrip(QWidget):
    def __init__(self, downloads: ResultDownloads, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("results-download")
        self._downloads = downloads
        self.job_id: int | None = None
        self._what = ""
        self.title_label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.detail_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.detail_label)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.close_button)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.hide)
        downloads.sig_progress.connect(self._on_progress)
        downloads.sig_notice.connect(self._on_notice)
        downloads.sig_finished.connect(self._on_finished)
        self.hide()

    def follow(self, job_id: int, what: str) -> None:
        """Show the download of job `job_id` (just started) from now on."""
        self.job_id = job_id
        self._what = what
        self.title_label.setText(f"Downloading {what}")
        self.bar.setValue(0)
        self.bar.show()
        self.detail_label.setText("connecting…")
        self.detail_label.setStyleSheet("")
        self.cancel_button.show()
        self.close_button.hide()
        self.show()

    def show_refusal(self, line: str) -> None:
        self.job_id = None
        self.title_label.setText("Download")
        self.bar.hide()
        self._ended(line, text_style(ERROR, self.palette()))

    @Slot()
    def cancel(self) -> None:
        if self.job_id is not None:
            self._downloads.cancel(self.job_id)
            self.detail_label.setText("stopping…")

    @Slot(int, object)
    def _on_progress(self, job_id: int, progress: object) -> None:
        if job_id != self.job_id or not isinstance(progress, DownloadProgress):
            return
        self.bar.setValue(int(progress.done * 1000 / progress.total) if progress.total else 1000)
        self.detail_label.setStyleSheet("")
        self.detail_label.setText(progress_text(progress))

    @Slot(int, str)
    def _on_notice(self, job_id: int, line: str) -> None:
        if job_id == self.job_id:
            self.detail_label.setText(line)

    @Slot(int, str)
    def _on_finished(self, job_id: int, problem: str) -> None:
        if job_id != self.job_id:
            return
        if problem:
            self.title_label.setText(f"Download of {self._what} stopped")
            self._ended(problem, text_style(ERROR, self.palette()))
        else:
            self.title_label.setText(f"Downloaded {self._what}")
            self.bar.setValue(1000)
            self._ended(f"done: {self.detail_label.text()}", "")

    def _ended(self, text: str, style: str) -> None:
        self.detail_label.setText(text)
        self.detail_label.setStyleSheet(style)
        self.cancel_button.hide()
        self.close_button.show()
        self.show()
