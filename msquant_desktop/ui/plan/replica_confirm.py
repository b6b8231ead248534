"""The confirmation before a serving plan's replicas are submitted: each replica's sbatch script exactly
as it will be sent (editable, audited like the Clusters tab's preview), one tab per replica.

The preview's run folder (`PREVIEW-RUN`) and job name (`…-PREVIEW`) are replaced by each job's own when
it is sent; nothing else changes.  An edit the audit refuses is one line here and the dialog stays open.
"""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services.serve_placement import PlacedReplicas, with_edited_script


class ReplicaConfirmDialog(QDialog):
    def __init__(
        self, placed: PlacedReplicas, profile: ClusterProfile, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("plan-submit-replicas")
        self.placed = placed
        self.profile = profile
        self.chosen: list[SlurmSubmission] = []
        count = len(placed.replicas)
        group = placed.replicas[0].group if placed.replicas else ""
        self.setWindowTitle(f"Submit {count} replicas to {placed.cluster}")
        intro = QLabel(
            f"{placed.summary}\nGroup {group}: {count} SLURM job(s), one per replica, each pinned to its node. "
            "These are the scripts that will be sent; PREVIEW-RUN and -PREVIEW become each job's run id "
            "and name."
        )
        intro.setWordWrap(True)
        self.tabs = QTabWidget()
        self.editors: list[QPlainTextEdit] = []
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for replica, script in zip(placed.replicas, placed.scripts, strict=True):
            editor = QPlainTextEdit(script)
            editor.setFont(font)
            editor.setObjectName(f"plan-replica-script-{replica.slot.replica}")
            self.editors.append(editor)
            self.tabs.addTab(editor, f"replica {replica.slot.replica} · {replica.slot.node}:{replica.port}")
        self.problem = QLabel()
        self.problem.setObjectName("plan-submit-problem")
        self.problem.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.submit_button = self.buttons.addButton(
            f"Submit {count} replicas", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.resize(900, 640)

    def accept(self) -> None:
        """Keep the submissions (each with its edit, audited); an edit refused stays here, one line."""
        chosen = []
        for replica, editor in zip(self.placed.replicas, self.editors, strict=True):
            try:
                chosen.append(with_edited_script(replica, self.profile, editor.toPlainText()))
            except ValueError as exc:
                self.problem.setText(str(exc))
                return
        self.chosen = chosen
        super().accept()
