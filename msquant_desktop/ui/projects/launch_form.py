"""The launch form: entry point, Hydra group pickers, free key=value lines, target, composed preview.

The command line shown under the form is built by the same pure function that builds the job
(`build_command`), so what the user reads is exactly what runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.jobs import JobTarget
from msquant_desktop.domain.projects import (
    DEFAULT_ENTRY_POINT,
    ClusterResources,
    HydraLayout,
    OverrideError,
    build_command,
    build_overrides,
    split_prefill,
)

CLUSTER_UNAVAILABLE_TIP = (
    "No cluster service in this build yet: cluster launches arrive with the Clusters tab."
)
LOCAL_UNAVAILABLE_TIP = "The local job engine is not available in this build."


class LaunchForm(QWidget):
    sig_launch_requested = Signal()
    """The user clicked Launch (read `entry_point()`, `overrides()`, `target()`, `cluster()`)."""
    sig_preview_requested = Signal()
    """The user asked for the composed config."""
    sig_config_dir_requested = Signal()
    """The user wants to choose the Hydra config folder."""
    sig_primary_chosen = Signal(str)
    """The user chose another primary config (name without .yaml)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout: HydraLayout | None = None
        self.pickers: dict[str, QComboBox] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.entry_point = QLineEdit(DEFAULT_ENTRY_POINT)
        self.entry_point.setToolTip("Split like a shell would (quotes work), but run without a shell")
        self.config_label = QLabel("No Hydra config folder (conf/ or configs/): plain command")
        self.config_label.setWordWrap(True)
        self.primary_combo = QComboBox()
        self.primary_combo.setToolTip("The primary config (config_name of @hydra.main)")
        self.primary_combo.hide()
        self.config_dir_button = QPushButton("Config folder…")
        self.config_dir_button.setToolTip("Use another Hydra config folder than conf/ or configs/")
        hydra_row = QHBoxLayout()
        hydra_row.addWidget(self.config_label, 1)
        hydra_row.addWidget(self.primary_combo)
        hydra_row.addWidget(self.config_dir_button)
        self.free_lines = QPlainTextEdit()
        self.free_lines.setPlaceholderText("key=value, one per line (e.g. trainer.opt.lr=0.01)")
        self.free_lines.setFont(mono)
        self.free_lines.setFixedHeight(72)
        self.command_view = QLineEdit()
        self.command_view.setReadOnly(True)
        self.command_view.setFont(mono)
        self.form_error = QLabel()
        self.form_error.setWordWrap(True)
        self.form_error.setStyleSheet("color: #b00020;")

        self.local_radio = QRadioButton("Local")
        self.cluster_radio = QRadioButton("Cluster")
        self.local_radio.setChecked(True)
        self._targets = QButtonGroup(self)
        self._targets.addButton(self.local_radio)
        self._targets.addButton(self.cluster_radio)
        self.cluster_combo = QComboBox()
        self.cluster_combo.setEnabled(False)
        self.snapshot_check = QCheckBox("Include uncommitted changes (snapshot as a patch)")
        self.snapshot_check.setToolTip(
            "Local runs check out the exact commit in the job's run folder; tick this to apply the "
            "current uncommitted changes on top (taken when you click Launch)."
        )
        self.partition = QLineEdit()
        self.partition.setPlaceholderText("partition (default)")
        self.gpus = QSpinBox()
        self.gpus.setRange(0, 64)
        self.gpus.setPrefix("GPUs ")
        self.cpus = QSpinBox()
        self.cpus.setRange(1, 512)
        self.cpus.setPrefix("CPUs ")
        self.memory = QLineEdit()
        self.memory.setPlaceholderText("memory, e.g. 16G")
        self.time_limit = QLineEdit()
        self.time_limit.setPlaceholderText("time, e.g. 01:00:00")
        self.resources_row = QWidget()
        resources = QHBoxLayout(self.resources_row)
        resources.setContentsMargins(0, 0, 0, 0)
        for field_widget in (self.partition, self.gpus, self.cpus, self.memory, self.time_limit):
            resources.addWidget(field_widget)
        targets = QHBoxLayout()
        for w in (self.local_radio, self.cluster_radio, self.cluster_combo):
            targets.addWidget(w)
        targets.addStretch(1)

        self.preview_button = QPushButton("Preview config")
        self.launch_button = QPushButton("Launch")
        self.launch_button.setDefault(True)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(mono)
        self.preview.setPlaceholderText("The composed Hydra config (YAML) appears here before launch.")
        self.notice = QLabel()
        self.notice.setWordWrap(True)

        form = QFormLayout()
        self._form = form
        form.addRow("Entry point", self.entry_point)
        form.addRow("Hydra", hydra_row)
        form.addRow("Overrides", self.free_lines)
        form.addRow("Target", targets)
        form.addRow("", self.snapshot_check)
        form.addRow("Resources", self.resources_row)
        form.addRow("Command", self.command_view)
        buttons = QHBoxLayout()
        buttons.addWidget(self.form_error, 1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.launch_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(self.preview, 1)

        self.entry_point.textChanged.connect(self.update_command)
        self.free_lines.textChanged.connect(self.update_command)
        self.cluster_radio.toggled.connect(self._on_target_toggled)
        self.preview_button.clicked.connect(self.sig_preview_requested)
        self.config_dir_button.clicked.connect(self.sig_config_dir_requested)
        self.primary_combo.activated.connect(
            lambda _index: self.sig_primary_chosen.emit(self.primary_combo.currentText())
        )
        self.launch_button.clicked.connect(self.sig_launch_requested)
        self.update_command()

    # -- filling -----------------------------------------------------------------------------------
    def set_layout(self, layout: HydraLayout | None) -> None:
        """Rebuild the group pickers, keeping the choices the user made where they still exist."""
        previous = self.group_choices()
        self._layout = layout
        for combo in self.pickers.values():
            self._form.removeRow(combo)
        self.pickers.clear()
        self.primary_combo.clear()
        self.primary_combo.setVisible(layout is not None and len(layout.primaries) > 1)
        if layout is None:
            self.config_label.setText("No Hydra config folder (conf/ or configs/): plain command")
        else:
            self.config_label.setText(f"{layout.config_dir}  ·  primary config: {layout.primary}.yaml")
            self.primary_combo.addItems(list(layout.primaries))
            self.primary_combo.setCurrentText(layout.primary)
            # Group pickers go right under the "Hydra" row (row 1).
            for row, (group, options) in enumerate(layout.groups, start=2):
                combo = QComboBox()
                default = layout.default_for(group)
                if default is None:
                    combo.addItem("(not selected)", "")
                for option in options:
                    combo.addItem(f"{option} (default)" if option == default else option, option)
                wanted = previous.get(group) or default or ""
                combo.setCurrentIndex(max(0, combo.findData(wanted)))
                combo.currentIndexChanged.connect(self.update_command)
                self.pickers[group] = combo
                self._form.insertRow(row, group, combo)
        self.update_command()

    def prefill(self, entry_point: str, overrides: Sequence[str]) -> None:
        """Fill the form from a past launch ("Re-run with changes")."""
        choices, free = split_prefill(self._layout, overrides)
        self.entry_point.setText(entry_point)
        for group, combo in self.pickers.items():
            wanted = choices.get(group) or (self._layout.default_for(group) if self._layout else "") or ""
            combo.setCurrentIndex(max(0, combo.findData(wanted)))
        self.free_lines.setPlainText("\n".join(free))
        self.update_command()

    def set_targets(self, local: bool, cluster: bool, clusters: Sequence[str]) -> None:
        self.local_radio.setEnabled(local)
        self.local_radio.setToolTip("" if local else LOCAL_UNAVAILABLE_TIP)
        self.cluster_radio.setEnabled(cluster)
        self.cluster_radio.setToolTip("" if cluster else CLUSTER_UNAVAILABLE_TIP)
        chosen = self.cluster_combo.currentText()
        self.cluster_combo.clear()
        self.cluster_combo.addItems(list(clusters))
        if chosen in clusters:
            self.cluster_combo.setCurrentText(chosen)
        if not cluster:
            self.local_radio.setChecked(True)
        self._on_target_toggled()

    # -- reading -----------------------------------------------------------------------------------
    def group_choices(self) -> dict[str, str]:
        return {group: str(combo.currentData() or "") for group, combo in self.pickers.items()}

    def set_group_choices(self, choices: Mapping[str, str]) -> None:
        for group, option in choices.items():
            combo = self.pickers[group]
            combo.setCurrentIndex(combo.findData(option))

    def overrides(self) -> list[str]:
        """All overrides; raises OverrideError naming the bad line."""
        return build_overrides(self._layout, self.group_choices(), self.free_lines.toPlainText())

    def command(self) -> tuple[str, ...]:
        """The exact argv a launch would run; raises OverrideError."""
        return build_command(self.entry_point.text(), self.overrides())

    def target(self) -> JobTarget:
        return JobTarget.SLURM if self.cluster_radio.isChecked() else JobTarget.LOCAL

    def cluster(self) -> str | None:
        return self.cluster_combo.currentText() or None if self.target() is JobTarget.SLURM else None

    def update_command(self) -> None:
        try:
            self.command_view.setText(shlex.join(self.command()))
            self.form_error.clear()
            self.launch_button.setEnabled(self.local_radio.isEnabled() or self.cluster_radio.isEnabled())
        except OverrideError as exc:
            self.command_view.clear()
            self.form_error.setText(str(exc))
            self.launch_button.setEnabled(False)

    def resources(self) -> ClusterResources:
        """What a cluster launch asks SLURM for (empty fields: the cluster's defaults)."""
        return ClusterResources(
            partition=self.partition.text().strip() or None,
            gpus=self.gpus.value(),
            cpus=self.cpus.value(),
            memory=self.memory.text().strip() or None,
            time_limit=self.time_limit.text().strip() or None,
        )

    def _on_target_toggled(self) -> None:
        cluster = self.cluster_radio.isChecked()
        self.cluster_combo.setEnabled(cluster)
        self.resources_row.setEnabled(cluster)
        self.snapshot_check.setEnabled(not cluster)
