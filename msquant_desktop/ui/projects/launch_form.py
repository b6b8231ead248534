"""The launch form: entry point, the project's Python, Hydra group pickers, free key=value lines,
target, composed preview.

The command line shown under the form is built by the same pure function that builds the job
(`build_command`), so what the user reads is exactly what runs.  Each picker offers only the choices
the project's Hydra accepted (see domain.project_configs); the override a choice adds is Hydra's own
string, and a past launch's overrides are split back into pickers only where they are exactly such a
string, so nothing is ever rewritten.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import cast

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
from msquant_desktop.domain.project_configs import HydraGroup, PythonEnv, group_overrides
from msquant_desktop.domain.projects import (
    DEFAULT_ENTRY_POINT,
    ClusterResources,
    HydraLayout,
    OverrideError,
    build_command,
    build_overrides,
    parse_override_lines,
    split_prefill,
)
from msquant_desktop.ui.colors import ERROR, MUTED, WARNING, text_style

CLUSTER_UNAVAILABLE_TIP = (
    "No cluster service in this build yet: cluster launches arrive with the Clusters tab."
)
LOCAL_UNAVAILABLE_TIP = "The local job engine is not available in this build."
NO_HYDRA_TEXT = "No Hydra entry point or config folder found: plain command"
OVERRIDES_HINT = (
    "Each line goes to the program verbatim as one argument: no shell quoting needed.\n"
    "Hydra's grammar: lists [a,b], 'a b' for spaces or commas, +key=v adds, ~key removes, a=1,2 sweeps."
)


class LaunchForm(QWidget):
    sig_launch_requested = Signal()
    """The user clicked Launch (read `entry_point()`, `overrides()`, `target()`, `cluster()`)."""
    sig_preview_requested = Signal()
    """The user asked for the composed config."""
    sig_config_dir_requested = Signal()
    """The user wants to choose the Hydra config folder."""
    sig_primary_chosen = Signal(str)
    """The user chose another primary config (name without .yaml)."""
    sig_entry_chosen = Signal(str)
    """The user chose another Hydra entry point (its script, relative to the project)."""
    sig_python_requested = Signal()
    """The user wants to choose the project's Python."""
    sig_python_reset = Signal()
    """The user wants the project's Python detected again."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout: HydraLayout | None = None
        self._env: PythonEnv | None = None
        self.pickers: dict[str, QComboBox] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)

        self.entry_point = QLineEdit(DEFAULT_ENTRY_POINT)
        self.entry_point.setToolTip("Split like a shell would (quotes work), but run without a shell")
        self.python_label = QLabel("detecting…")
        self.python_label.setWordWrap(True)
        self.python_button = QPushButton("Python…")
        self.python_button.setToolTip("Choose the interpreter for this project's Hydra and local runs")
        self.python_detect_button = QPushButton("Detect")
        self.python_detect_button.setToolTip(
            "Forget the chosen interpreter: use .venv/, venv/ or the conda env"
        )
        python_row = QHBoxLayout()
        python_row.addWidget(self.python_label, 1)
        python_row.addWidget(self.python_button)
        python_row.addWidget(self.python_detect_button)
        self.entry_combo = QComboBox()
        self.entry_combo.setToolTip("The Hydra entry points found in the project's files")
        self.entry_combo.hide()
        self.config_label = QLabel(NO_HYDRA_TEXT)
        self.config_label.setWordWrap(True)
        self.primary_combo = QComboBox()
        self.primary_combo.setToolTip("The primary config (config_name of @hydra.main)")
        self.primary_combo.hide()
        self.config_dir_button = QPushButton("Config folder…")
        self.config_dir_button.setToolTip("Use another Hydra config folder than the entry point's")
        hydra_row = QHBoxLayout()
        hydra_row.addWidget(self.entry_combo)
        hydra_row.addWidget(self.config_label, 1)
        hydra_row.addWidget(self.primary_combo)
        hydra_row.addWidget(self.config_dir_button)
        self.free_lines = QPlainTextEdit()
        self.free_lines.setPlaceholderText(
            "key=value, one per line, verbatim (e.g. trainer.opt.lr=0.01, tags=[a,b], name='two words')"
        )
        self.free_lines.setToolTip(OVERRIDES_HINT)
        self.free_lines.setFont(mono)
        self.free_lines.setFixedHeight(72)
        self.overrides_hint = QLabel(OVERRIDES_HINT)
        self.overrides_hint.setWordWrap(False)  # (wrapped, a form row gets spare height around it)
        self.overrides_hint.setStyleSheet(text_style(MUTED, self.palette()))
        self.multirun_check = QCheckBox("Multirun (--multirun): a sweep, with the config's own sweeper")
        self.multirun_check.setToolTip(
            "Sweep values (a=1,2) run as one job per combination; a config with an optimizing sweeper "
            "(e.g. optuna) runs as one --multirun job."
        )
        self.command_view = QLineEdit()
        self.command_view.setReadOnly(True)
        self.command_view.setFont(mono)
        self.form_error = QLabel()
        self.form_error.setWordWrap(True)
        self.form_error.setStyleSheet(text_style(ERROR, self.palette()))

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
        self.account = QLineEdit()
        self.account.setPlaceholderText("account")
        self.qos = QLineEdit()
        self.qos.setPlaceholderText("QoS")
        self.constraint = QLineEdit()
        self.constraint.setPlaceholderText("constraint")
        self.sbatch_lines = QLineEdit()
        self.sbatch_lines.setPlaceholderText("extra #SBATCH lines, ; between")
        self.sbatch_lines.setToolTip(
            "Extra sbatch options, e.g. --mail-type=END; --exclusive (an option value never holds ';')"
        )
        self.resources_row = QWidget()
        resources = QHBoxLayout(self.resources_row)
        resources.setContentsMargins(0, 0, 0, 0)
        for field_widget in (self.partition, self.gpus, self.cpus, self.memory, self.time_limit):
            resources.addWidget(field_widget)
        self.sbatch_row = QWidget()  # account, QoS, constraint and extra lines: a second row
        sbatch_row = QHBoxLayout(self.sbatch_row)
        sbatch_row.setContentsMargins(0, 0, 0, 0)
        for field_widget in (self.account, self.qos, self.constraint, self.sbatch_lines):
            sbatch_row.addWidget(field_widget)
        targets = QHBoxLayout()
        for w in (self.local_radio, self.cluster_radio, self.cluster_combo):
            targets.addWidget(w)
        targets.addStretch(1)

        self.preview_button = QPushButton("Preview config")
        self.preview_hydra_check = QCheckBox("hydra: section")
        self.preview_hydra_check.setToolTip(
            "Also show Hydra's own config (hydra.run.dir, launcher, sweeper…)"
        )
        self.preview_resolved_check = QCheckBox("resolved values")
        self.preview_resolved_check.setToolTip("Also show the config with ${...} interpolations resolved")
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
        form.addRow("Python", python_row)
        form.addRow("Hydra", hydra_row)
        form.addRow("Overrides", self.free_lines)
        form.addRow("", self.overrides_hint)
        form.addRow("", self.multirun_check)
        form.addRow("Target", targets)
        form.addRow("", self.snapshot_check)
        form.addRow("Resources", self.resources_row)
        form.addRow("sbatch options", self.sbatch_row)
        form.addRow("Command", self.command_view)
        buttons = QHBoxLayout()
        buttons.addWidget(self.form_error, 1)
        buttons.addWidget(self.preview_hydra_check)
        buttons.addWidget(self.preview_resolved_check)
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
        self.cluster_radio.toggled.connect(self.update_command)
        self.multirun_check.toggled.connect(self.update_command)
        self.python_button.clicked.connect(self.sig_python_requested)
        self.python_detect_button.clicked.connect(self.sig_python_reset)
        self.entry_combo.activated.connect(
            lambda _index: self.sig_entry_chosen.emit(str(self.entry_combo.currentData() or ""))
        )
        self.preview_button.clicked.connect(self.sig_preview_requested)
        self.config_dir_button.clicked.connect(self.sig_config_dir_requested)
        self.primary_combo.activated.connect(
            lambda _index: self.sig_primary_chosen.emit(self.primary_combo.currentText())
        )
        self.launch_button.clicked.connect(self.sig_launch_requested)
        self.update_command()

    # -- filling -----------------------------------------------------------------------------------
    def set_layout(self, layout: HydraLayout | None, problem: str | None = None) -> None:
        """Rebuild the group pickers from what the project's Hydra reported.

        The form's overrides (pickers and free lines) are split again against the new layout, so a
        choice typed as a line before the layout arrived (a project just opened) lands in its picker,
        and a choice the new layout does not offer stays a line, unchanged.
        """
        try:
            current = self.overrides()
        except OverrideError:
            current = None
        self._layout = layout
        for combo in self.pickers.values():
            self._form.removeRow(combo)
        self.pickers.clear()
        self.primary_combo.clear()
        self.primary_combo.setVisible(layout is not None and len(layout.primaries) > 1)
        self._show_entry_points(layout)
        if layout is not None:
            self.set_environment(layout.env)
        if layout is None:
            self.config_label.setText(f"Hydra config problem: {problem}" if problem else NO_HYDRA_TEXT)
        else:
            where = layout.config_dir or (f"pkg://{layout.config_module}" if layout.config_module else "—")
            self.config_label.setText(
                f"{where}  ·  primary config: {layout.primary}.yaml  ·  Hydra {layout.hydra_version}"
            )
            self.config_label.setToolTip("\n".join(layout.warnings))
            self.primary_combo.addItems(list(layout.primaries))
            self.primary_combo.setCurrentText(layout.primary or "")
            # Group pickers go right under the "Hydra" row.
            position = cast(tuple[int, object], self._form.getWidgetPosition(self.free_lines))
            first_row = position[0]
            for row, group in enumerate(layout.groups, start=first_row):
                combo = self._picker(group)
                combo.currentIndexChanged.connect(self.update_command)
                self.pickers[group.key] = combo
                self._form.insertRow(row, group.key if group.in_defaults else f"+{group.key}", combo)
        self.multirun_check.setEnabled(layout is not None and layout.supports_multirun)
        if current is not None:
            choices, free = split_prefill(layout, current)
            self._apply(choices, free)
        self.update_command()

    def _picker(self, group: HydraGroup) -> QComboBox:
        combo = QComboBox()
        if group.default is None:
            combo.addItem("(none)", "")
        elif group.choice(group.default) is None:
            combo.addItem(f"{group.default} (default)", group.default)
        for choice in group.choices:
            label = f"{choice.option} (default)" if choice.option == group.default else choice.option
            combo.addItem(label, choice.option)
        combo.setCurrentIndex(max(0, combo.findData(group.default or "")))
        tip = [f"package: {group.package or 'the group'}" + (" · optional" if group.optional else "")]
        if not group.in_defaults:
            tip.append("not in the primary's defaults list: a choice is added with +")
        for option, _override, error in group.refused:
            tip.append(f"not offered: {option} ({error.splitlines()[0]})")
        combo.setToolTip("\n".join(tip))
        return combo

    def _show_entry_points(self, layout: HydraLayout | None) -> None:
        self.entry_combo.clear()
        entries = layout.entry_points if layout else ()
        for entry in entries:
            self.entry_combo.addItem(entry.label(), entry.script)
        if layout is not None and layout.entry is not None:
            self.entry_combo.setCurrentIndex(max(0, self.entry_combo.findData(layout.entry.script)))
        self.entry_combo.setVisible(len(entries) > 1)

    def set_environment(self, env: PythonEnv | None) -> None:
        """Show the project's Python; local commands use it for a bare `python`."""
        self._env = env
        if env is None:
            self.python_label.setText("detecting…")
        else:
            self.python_label.setText(env.describe())
            self.python_label.setStyleSheet(
                text_style(WARNING, self.palette()) if env.is_fallback or env.note else ""
            )
        self.update_command()

    def prefill(self, entry_point: str, overrides: Sequence[str]) -> None:
        """Fill the form from a past launch ("Re-run with changes", a project reopened)."""
        choices, free = split_prefill(self._layout, overrides)
        self.entry_point.setText(entry_point)
        self._apply(choices, free)
        self.update_command()

    def _apply(self, choices: Mapping[str, str], free: Sequence[str]) -> None:
        for key, combo in self.pickers.items():
            wanted = choices.get(key) or (self._layout.default_for(key) if self._layout else "") or ""
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(wanted)))
            combo.blockSignals(False)
        self.free_lines.blockSignals(True)
        self.free_lines.setPlainText("\n".join(free))
        self.free_lines.blockSignals(False)

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
        """Each picker's option by its override key ("" = none)."""
        return {key: str(combo.currentData() or "") for key, combo in self.pickers.items()}

    def set_group_choices(self, choices: Mapping[str, str]) -> None:
        for key, option in choices.items():
            combo = self.pickers[key]
            combo.setCurrentIndex(combo.findData(option))

    def picker_overrides(self) -> list[str]:
        return group_overrides(self._layout, self.group_choices())

    def overrides(self) -> list[str]:
        """All overrides; raises OverrideError naming the bad line."""
        return build_overrides(self._layout, self.group_choices(), self.free_lines.toPlainText())

    def free_overrides(self) -> list[str]:
        return parse_override_lines(self.free_lines.toPlainText())

    def multirun(self) -> bool:
        return self.multirun_check.isChecked() and self.multirun_check.isEnabled()

    def environment(self) -> PythonEnv | None:
        return self._env

    def command(self) -> tuple[str, ...]:
        """The exact argv a launch would run (a sweep: the command before Hydra splits it into its
        members); raises OverrideError."""
        local = self.target() is JobTarget.LOCAL
        return build_command(
            self.entry_point.text(), self.overrides(), self._env if local else None, multirun=self.multirun()
        )

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
            account=self.account.text().strip() or None,
            qos=self.qos.text().strip() or None,
            constraint=self.constraint.text().strip() or None,
            sbatch_lines=tuple(line.strip() for line in self.sbatch_lines.text().split(";") if line.strip()),
        )

    def _on_target_toggled(self) -> None:
        cluster = self.cluster_radio.isChecked()
        self.cluster_combo.setEnabled(cluster)
        self.resources_row.setEnabled(cluster)
        self.sbatch_row.setEnabled(cluster)
        self.snapshot_check.setEnabled(not cluster)
