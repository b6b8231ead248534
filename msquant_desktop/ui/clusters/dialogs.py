"""Profiles editor (the clusters.yaml, validated before saving) and the unknown-host-key question."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.slurm.profiles import ProfileError, dump_profiles, parse_profiles
from msquant_desktop.ui.colors import ERROR, text_style

EXAMPLE = """clusters:
- name: mycluster
  host: user@login.example.edu      # or an alias from ~/.ssh/config
  ssh_key_path: ~/.ssh/id_ed25519
  workspace: /scratch/user/msquant
  allowed_partitions: [gpu]
  allowed_gpu_types: [a100]
  preamble: |
    module load cuda
  account: myproject                 # optional: --account, --qos, --constraint
  qos: normal
  sbatch_lines: ['#SBATCH --mail-type=END,FAIL']
  signal_lead_s: 300                 # SIGUSR1 to the job this long before its time limit (0: off)
"""


class ProfilesDialog(QDialog):
    """Edit every cluster profile as YAML; refused with the field named when it does not validate."""

    def __init__(self, service: ClusterService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cluster profiles")
        self._service = service
        self.editor = QPlainTextEdit()
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        profiles = service.profiles()
        self.editor.setPlainText(dump_profiles(profiles) if profiles else EXAMPLE)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(text_style(ERROR, self.palette()))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Passwords and passphrases never go here: the app asks for them."))
        layout.addWidget(self.editor)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self.resize(640, 480)

    def save(self) -> None:
        try:
            profiles = parse_profiles(self.editor.toPlainText(), "profiles")
            self._service.set_profiles(profiles)
        except (ProfileError, OSError) as exc:
            self.error_label.setText(str(exc))
            return
        self.accept()


def ask_host_key(parent: QWidget, cluster: str, host: str, fingerprint: str, key_type: str) -> bool:
    """Show the fingerprint; True only when the user explicitly accepts it."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Unknown host key")
    box.setText(f"The SSH host key of {host} (cluster {cluster}) is not known yet.")
    box.setInformativeText(
        f"{key_type}\n{fingerprint}\n\nCompare it with the fingerprint your cluster's admins publish. "
        "Accept only if it matches; it is then saved to known_hosts."
    )
    accept = box.addButton("Accept and connect", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Reject", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return box.clickedButton() is accept
