"""“Plan serving…”: how many GPUs of which type serve a model folder at a rate within a p95 SLO, per
scheme, with the latency curve, an autoscaler replay and a placement on a connected cluster.

Non-modal.  Every figure comes from `services/serving_plan.py` (the same functions as `plan … --json`),
computed on the `PlanRunner`'s thread; inputs are read on the GUI thread into plain values first, and a
change recomputes after a short pause (a parented single-shot timer), newest request winning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from msquant_desktop.domain.autoscale import CONTROLLER_NAMES
from msquant_desktop.domain.gpu_catalog import GPU_TYPES, find_gpu_type
from msquant_desktop.domain.serving_memory import PLAN_SCHEMES
from msquant_desktop.services import serving_plan
from msquant_desktop.services.cluster_service import ClusterService
from msquant_desktop.services.plan_runner import PlanRunner
from msquant_desktop.services.serve_placement import group_name, placement_preview
from msquant_desktop.ui.plan.placement_panel import PlacementPanel
from msquant_desktop.ui.plan.plots import LatencyPlot, ReplayPlot
from msquant_desktop.ui.plan.table import SchemeTableModel, row_problem

RECOMPUTE_DELAY_MS = 250
SHAPES = ("diurnal", "step", "square", "sine")
CONTROLLER_TITLES = {
    "pid": "PID (latency, anti-windup)",
    "ray": "Ray Serve (ongoing requests)",
    "skyserve": "SkyServe (QPS)",
    "kpa": "Knative KPA (concurrency)",
}
SPEED_TITLES = {
    serving_plan.SPEED_AUTO: "Measured if evaluated, else roofline",
    serving_plan.SPEED_ROOFLINE: "Roofline bound × 0.5",
    serving_plan.SPEED_ENTERED: "Entered (tokens/s at batch 1)",
}


@dataclass(frozen=True)
class PlanSubject:
    """What is planned: a model folder (or config.json), and the newest evaluation of it if known."""

    model: str
    evaluation: dict[str, Any] | None = None
    title: str = ""


class ServingPlanDialog(QDialog):
    sig_computed = Signal(str)
    """A result arrived and was shown: "facts", "rows", "replay" or "placement" (tests wait on it)."""

    def __init__(
        self,
        subject: PlanSubject,
        runner: PlanRunner,
        clusters: ClusterService | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("serving-plan-dialog")
        self.setWindowTitle(f"Plan serving — {subject.title or Path(subject.model).name}")
        self.subject = subject
        self._runner = runner
        self.folder_scheme: str | None = None
        self.goal: serving_plan.ServingGoal | None = None
        self._facts_done = False

        # -- inputs ------------------------------------------------------------------------------------
        self.rate_spin = _double(0.001, 1e7, 10.0, 3, " req/s")
        self.slo_spin = _double(0.01, 1e6, 30.0, 2, " s")
        self.output_spin = _int(1, 1_000_000, 256, " tokens")
        self.context_spin = _int(16, 10_000_000, 4096, " tokens")
        self.gpu_combo = QComboBox()
        self.gpu_combo.setObjectName("plan-gpu")
        self.kv_combo = QComboBox()
        self.kv_combo.addItems(["bf16", "fp8"])
        self.speed_combo = QComboBox()
        for key, title in SPEED_TITLES.items():
            self.speed_combo.addItem(title, key)
        self.entered_spin = _double(0.01, 1e7, 50.0, 2, " tok/s")
        self.scheme_list = QListWidget()
        self.scheme_list.setObjectName("plan-schemes")
        for scheme in PLAN_SCHEMES:
            item = QListWidgetItem(scheme)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.scheme_list.addItem(item)
        self.scheme_list.setMaximumHeight(150)
        self.source_label = QLabel()
        self.source_label.setObjectName("plan-speed-source")
        self.source_label.setWordWrap(True)
        self.status_label = QLabel("Reading the model…")
        self.status_label.setObjectName("plan-status")
        self.status_label.setWordWrap(True)
        model_label = QLabel(subject.model)
        model_label.setWordWrap(True)
        model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Model", model_label)
        form.addRow("Arrival rate", self.rate_spin)
        form.addRow("SLO (p95 latency)", self.slo_spin)
        form.addRow("Output length", self.output_spin)
        form.addRow("Context length", self.context_spin)
        form.addRow("GPU type", self.gpu_combo)
        form.addRow("KV cache", self.kv_combo)
        form.addRow("Service rate", self.speed_combo)
        form.addRow("Entered speed", self.entered_spin)
        form.addRow("Schemes", self.scheme_list)
        inputs = QWidget()
        inputs_layout = QVBoxLayout(inputs)
        inputs_layout.addLayout(form)
        inputs_layout.addWidget(self.source_label)
        inputs_layout.addWidget(self.status_label)
        inputs_layout.addStretch(1)

        # -- outputs -----------------------------------------------------------------------------------
        self.model = SchemeTableModel(self)
        self.table = QTableView()
        self.table.setObjectName("plan-table")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.latency_plot = LatencyPlot()
        self.replay_plot = ReplayPlot()
        self.shape_combo = QComboBox()
        self.shape_combo.addItems(SHAPES)
        self.controller_combo = QComboBox()
        for name in CONTROLLER_NAMES:
            self.controller_combo.addItem(CONTROLLER_TITLES.get(name, name), name)
        self.cold_spin = _int(0, 3600, 120, " s")
        self.low_spin = _double(0.0, 1.0, 0.3, 2, "")
        self.low_spin.setSingleStep(0.05)
        self.low_spin.setToolTip("the trace's low load as a fraction of the arrival rate (its high)")
        self.replay_scheme = QLabel("—")
        self.replay_summary = QLabel("")
        self.replay_summary.setObjectName("plan-replay-summary")
        self.replay_summary.setWordWrap(True)
        replay_controls = QHBoxLayout()
        for label, widget in (
            ("Scheme", self.replay_scheme),
            ("Load", self.shape_combo),
            ("low ×", self.low_spin),
            ("Controller", self.controller_combo),
            ("Cold start", self.cold_spin),
        ):
            replay_controls.addWidget(QLabel(label))
            replay_controls.addWidget(widget)
        replay_controls.addStretch(1)
        replay_page = QWidget()
        replay_layout = QVBoxLayout(replay_page)
        replay_layout.addLayout(replay_controls)
        replay_layout.addWidget(self.replay_plot, 1)
        replay_layout.addWidget(self.replay_summary)
        self.placement = PlacementPanel(clusters)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.latency_plot, "Latency vs replicas")
        self.tabs.addTab(replay_page, "Replay")
        self.tabs.addTab(self.placement, "Placement")
        outputs = QSplitter(Qt.Orientation.Vertical)
        table_box = QGroupBox("Per scheme (the selected row is replayed and placed)")
        QVBoxLayout(table_box).addWidget(self.table)
        outputs.addWidget(table_box)
        outputs.addWidget(self.tabs)
        outputs.setStretchFactor(1, 2)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(inputs)
        main.addWidget(outputs)
        main.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(main)
        self.resize(1280, 860)

        self._timer = QTimer(self)
        self._timer.setObjectName("plan-recompute")
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOMPUTE_DELAY_MS)
        self._timer.timeout.connect(self.compute)
        self._replay_timer = QTimer(self)
        self._replay_timer.setObjectName("plan-replay")
        self._replay_timer.setSingleShot(True)
        self._replay_timer.setInterval(RECOMPUTE_DELAY_MS)
        self._replay_timer.timeout.connect(self.replay)
        self.fill_gpu_types()
        runner.sig_done.connect(self._on_done)
        runner.sig_failed.connect(self._on_failed)
        for spin in (self.rate_spin, self.slo_spin, self.entered_spin):
            spin.valueChanged.connect(self.schedule)
        for ispin in (self.output_spin, self.context_spin):
            ispin.valueChanged.connect(self.schedule)
        for combo in (self.gpu_combo, self.kv_combo, self.speed_combo):
            combo.currentIndexChanged.connect(self.schedule)
        self.scheme_list.itemChanged.connect(self.schedule)
        for rcombo in (self.shape_combo, self.controller_combo):
            rcombo.currentIndexChanged.connect(self.schedule_replay)
        self.cold_spin.valueChanged.connect(self.schedule_replay)
        self.low_spin.valueChanged.connect(self.schedule_replay)
        self.table.selectionModel().selectionChanged.connect(self._on_row_chosen)
        self.placement.sig_inputs_changed.connect(self.fill_gpu_types)  # a view may bring new GPU types
        self.placement.sig_inputs_changed.connect(self.place)
        self.speed_combo.currentIndexChanged.connect(self._update_entered)
        self._update_entered()
        self.placement.model_edit.setText(subject.model)
        model = subject.model
        runner.submit(self._kind("facts"), lambda: serving_plan.model_facts(model))

    # -- inputs ------------------------------------------------------------------------------------------
    def _kind(self, what: str) -> str:
        """Job kinds are per dialog: two open dialogs never supersede each other's jobs."""
        return f"{id(self)}:{what}"

    def fill_gpu_types(self) -> None:
        """The catalogue, then the GPU types seen on configured clusters (mapped onto the catalogue;
        a type the catalogue does not know is listed, disabled, so the user sees why it is missing)."""
        current = self.gpu_combo.currentData()
        self.gpu_combo.blockSignals(True)
        self.gpu_combo.clear()
        for gpu in GPU_TYPES:
            self.gpu_combo.addItem(
                f"{gpu.name} ({gpu.memory_gib:.0f} GiB, {gpu.bandwidth_bytes_per_s / 1e12:.2f} TB/s)", gpu.key
            )
        for cluster, gres in self.placement.cluster_gpu_types():
            found = find_gpu_type(gres)
            if found is None:
                self.gpu_combo.addItem(f"{gres} on {cluster} (not in the catalogue)", None)
                item = self.gpu_combo.model().item(self.gpu_combo.count() - 1)  # type: ignore[attr-defined]
                item.setEnabled(False)
            else:
                self.gpu_combo.addItem(f"{gres} on {cluster} → {found.name}", found.key)
        index = self.gpu_combo.findData(current or serving_plan.DEFAULT_GPU)
        self.gpu_combo.setCurrentIndex(max(0, index))
        self.gpu_combo.blockSignals(False)

    def schemes(self) -> list[str]:
        items = (self.scheme_list.item(i) for i in range(self.scheme_list.count()))
        return [item.text() for item in items if item.checkState() == Qt.CheckState.Checked]

    def gpu_key(self) -> str:
        return str(self.gpu_combo.currentData() or serving_plan.DEFAULT_GPU)

    def read_goal(self) -> serving_plan.ServingGoal:
        return serving_plan.ServingGoal(
            arrival_rate=self.rate_spin.value(),
            slo_p95_s=self.slo_spin.value(),
            output_tokens=float(self.output_spin.value()),
            context_length=self.context_spin.value(),
        )

    @Slot()
    def _update_entered(self, *_args: Any) -> None:
        self.entered_spin.setEnabled(self.speed_combo.currentData() == serving_plan.SPEED_ENTERED)

    @Slot()
    def schedule(self, *_args: Any) -> None:
        if self._facts_done:
            self._timer.start()

    @Slot()
    def schedule_replay(self, *_args: Any) -> None:
        if self.model.rows:
            self._replay_timer.start()

    # -- jobs --------------------------------------------------------------------------------------------
    @Slot()
    def compute(self) -> None:
        """Read the inputs and compute the table and the latency curves off the GUI thread."""
        schemes = self.schemes()
        if not schemes:
            self.status_label.setText("Choose at least one scheme.")
            return
        goal = self.read_goal()
        model, gpu, kv = self.subject.model, self.gpu_key(), self.kv_combo.currentText()
        mode = str(self.speed_combo.currentData())
        evaluation, entered = self.subject.evaluation, self.entered_spin.value()
        folder_scheme = self.folder_scheme or ""
        self.status_label.setText("Computing…")

        def work() -> dict[str, Any]:
            speeds = serving_plan.chosen_speeds(schemes, folder_scheme, mode, evaluation, entered)
            rows = serving_plan.scheme_rows(model, gpu, goal, schemes, kv, speeds)
            curves = {row["scheme"]: serving_plan.latency_curve(row, goal) for row in rows}
            return {"goal": goal, "rows": rows, "curves": curves}

        self._runner.submit(self._kind("rows"), work)

    @Slot()
    def replay(self) -> None:
        row = self.selected_row()
        goal = self.goal
        if row is None or goal is None:
            return
        if row.get("sized_as") == "pipeline":
            self.replay_summary.setText(
                f"{row['scheme']}: the replay drives replicas that fit one node; this one is split into "
                "pipeline stages across nodes"
            )
            return
        if not row.get("fits"):
            self.replay_summary.setText(f"{row['scheme']}: {row_problem(row)}")
            return
        shape, controller = self.shape_combo.currentText(), str(self.controller_combo.currentData())
        cold, low = float(self.cold_spin.value()), self.low_spin.value()
        self.replay_summary.setText(f"Replaying {shape} load through {controller}…")

        def work() -> dict[str, Any]:
            config = serving_plan.row_replay_config(row, goal, cold_start_s=cold)
            args: dict[str, float | None] = {"low": low * goal.arrival_rate, "high": goal.arrival_rate}
            report = serving_plan.replay_report(None, shape, args, controller, config)
            return {"scheme": row["scheme"], "slo": goal.slo_p95_s, "report": report}

        self._runner.submit(self._kind("replay"), work)

    @Slot()
    def place(self) -> None:
        row = self.selected_row()
        view = self.placement.current_view()
        if view is None:
            if self.placement.cluster_name() is None:
                self.placement.show_problem(
                    "No cluster connected: placement needs a connected cluster (Clusters tab)."
                )
            return
        if row is not None and row.get("sized_as") == "pipeline":
            self.placement.show_problem(
                f"{row['scheme']}: a replica split into pipeline stages spans nodes (vLLM runs it on a Ray "
                "cluster); placement covers replicas that fit one node"
            )
            return
        if row is None or not row.get("replicas"):
            self.placement.show_problem(
                f"{row['scheme']}: {row_problem(row)}" if row else "Choose a scheme row to place."
            )
            return
        name = self.placement.cluster_name() or ""
        replicas, tp, gpu = int(row["replicas"]), int(row["tensor_parallel"]), self.gpu_key()
        model = self.placement.model_edit.text().strip() or self.subject.model
        template, port = self.placement.template_edit.text(), self.placement.port_spin.value()
        group = group_name(model, time.strftime("%Y%m%d-%H%M%S"))
        profile = self.placement.cluster_profile(name)

        def work() -> dict[str, Any]:
            return placement_preview(view, profile, replicas, tp, gpu, model, group, template, port)

        self._runner.submit(self._kind("placement"), work)

    # -- results -----------------------------------------------------------------------------------------
    def _mine(self, ticket: int, kind: str) -> str | None:
        prefix = f"{id(self)}:"
        if not kind.startswith(prefix) or self._runner.latest(kind) != ticket:
            return None
        return kind[len(prefix) :]

    @Slot(int, str, object)
    def _on_done(self, ticket: int, kind: str, result: Any) -> None:
        what = self._mine(ticket, kind)
        if what is None:
            return
        if what == "facts":
            self._show_facts(result)
        elif what == "rows":
            self._show_rows(result)
        elif what == "replay":
            self._show_replay(result)
        elif what == "placement":
            self.placement.show_result(result)
        self.sig_computed.emit(what)

    @Slot(int, str, str)
    def _on_failed(self, ticket: int, kind: str, message: str) -> None:
        what = self._mine(ticket, kind)
        if what is None:
            return
        if what == "replay":
            self.replay_summary.setText(f"Replay failed: {message}")
        elif what == "placement":
            self.placement.show_problem(message)
        else:
            self.status_label.setText(message)
        self.sig_computed.emit(what)

    def _show_facts(self, facts: dict[str, Any]) -> None:
        self.folder_scheme = facts["folder_scheme"]
        limit = int(facts.get("max_position_embeddings") or 0)
        if limit:
            self.context_spin.blockSignals(True)
            self.context_spin.setValue(min(4096, limit))
            self.context_spin.blockSignals(False)
        measured = serving_plan.measured_speed(self.subject.evaluation)
        weights = (
            "weights read from the checkpoint" if facts["has_weights"] else "config.json only: estimates"
        )
        if measured is not None:
            self.source_label.setText(
                f"This folder is {self.folder_scheme} ({weights}). Its evaluation measured the decode "
                f"speed — {measured.describe()}; other schemes use the roofline bound."
            )
        else:
            self.source_label.setText(
                f"This folder is {self.folder_scheme} ({weights}). No evaluation with decode speeds in the "
                "results: the service rate is the roofline bound (or enter one)."
            )
        self._facts_done = True
        self.compute()

    def _show_rows(self, result: dict[str, Any]) -> None:
        previous = self.selected_row()
        self.goal = result["goal"]
        rows: list[dict[str, Any]] = result["rows"]
        self.model.set_rows(rows)
        names = [r["scheme"] for r in rows]
        keep = previous["scheme"] if previous and previous["scheme"] in names else None
        pick = keep or next((r["scheme"] for r in rows if r.get("replicas")), names[0] if names else None)
        if pick is not None:
            self.table.selectRow(names.index(pick))
        goal = result["goal"]
        self.latency_plot.show_curves(result["curves"], goal.slo_p95_s)
        missing = [f"{r['scheme']}: {row_problem(r)}" for r in rows if row_problem(r)]
        self.status_label.setText(
            f"{len(rows)} scheme(s) at {goal.arrival_rate:g} req/s, p95 ≤ {goal.slo_p95_s:g} s on "
            f"{self.gpu_combo.currentText()}." + ("\n" + "\n".join(missing) if missing else "")
        )
        self.replay()
        self.place()

    def _show_replay(self, result: dict[str, Any]) -> None:
        report = result["report"]
        self.replay_plot.show_series(report["series"], result["slo"])
        self.replay_summary.setText(
            f"{result['scheme']}, {report['trace']} load, {report['controller']}: "
            f"SLO violated {report['slo_violation_minutes']:.1f} min, {report['gpu_hours']:.1f} GPU-hours, "
            f"{report['scaling_actions']} scaling actions, replicas {report['mean_replicas']:.2f} on average "
            f"(max {report['max_replicas']}); a replica counted as {report['servers_per_replica']} slots at "
            f"{report['service_rate']:.3g} req/s, cold start {report['cold_start_s']:g} s."
        )

    def selected_row(self) -> dict[str, Any] | None:
        indexes = self.table.selectionModel().selectedRows()
        return self.model.rows[indexes[0].row()] if indexes else None

    @Slot()
    def _on_row_chosen(self, *_args: Any) -> None:
        row = self.selected_row()
        self.replay_scheme.setText(row["scheme"] if row else "—")
        self.schedule_replay()
        self.place()


def _double(low: float, high: float, value: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setKeyboardTracking(False)
    return spin


def _int(low: int, high: int, value: int, suffix: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setKeyboardTracking(False)
    return spin
