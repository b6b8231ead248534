"""“Plan serving…” offscreen: opened on the demo model's recorded W4A16 output, it computes off the GUI
thread and shows exactly `services/serving_plan.py`'s numbers; the replay and a placement on recorded
`scontrol` output follow; bad input is one line."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from msquant_desktop.domain.serving_memory import PLAN_SCHEMES
from msquant_desktop.services import serving_plan
from msquant_desktop.services.plan_runner import PlanRunner
from msquant_desktop.slurm.gpus import gpu_view
from msquant_desktop.slurm.parsers import parse_nodes
from msquant_desktop.ui.plan.serving_dialog import PlanSubject, ServingPlanDialog
from msquant_desktop.ui.plan.table import COLUMNS
from tests.lagprobe import LagProbe, spin_until

EVALUATION = {"decode_tokens_per_s": 120.0, "decode_tokens_per_s_batch8": 600.0, "device": "cpu"}
SLURM_FIXTURES = Path(__file__).parents[1] / "slurm" / "fixtures"
COL = {title: i for i, (title, _tip) in enumerate(COLUMNS)}


@pytest.fixture
def runner(qapp):  # type: ignore[no-untyped-def]
    r = PlanRunner()
    yield r
    r.shutdown()


def _open(qtbot, runner: PlanRunner, model: Path, evaluation: dict | None = None) -> ServingPlanDialog:  # type: ignore[no-untyped-def]
    dialog = ServingPlanDialog(PlanSubject(str(model), evaluation), runner)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _wait_rows(qtbot, dialog: ServingPlanDialog, rate: float) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(
        lambda: dialog.goal is not None and dialog.goal.arrival_rate == rate and bool(dialog.model.rows),
        timeout=20_000,
    )


def test_the_table_shows_the_planners_numbers_with_the_measured_speed(qtbot, runner, recorded) -> None:  # type: ignore[no-untyped-def]
    folder = recorded["W4A16"]
    dialog = _open(qtbot, runner, folder, EVALUATION)
    dialog.shape_combo.setCurrentText("step")  # an hour's replay (the 24 h diurnal is the bench's)
    _wait_rows(qtbot, dialog, 10.0)
    assert dialog.folder_scheme == "W4A16" and dialog.context_spin.value() == 1024  # the model's limit
    assert "measured" in dialog.source_label.text()
    with LagProbe() as probe:  # a change recomputes (after the debounce), off the GUI thread
        dialog.rate_spin.setValue(40.0)
        spin_until(lambda: dialog.goal is not None and dialog.goal.arrival_rate == 40.0, timeout_s=30)
        replayed = dialog.replay_summary.text()
        spin_until(lambda: dialog.replay_summary.text() != replayed, timeout_s=30)  # the new replay
    # The seconds of sizing and replaying ran on the worker: the GUI thread only showed the results.
    assert probe.max_busy_ms < 300, probe.summary()
    goal = serving_plan.ServingGoal(
        arrival_rate=40.0, slo_p95_s=30.0, output_tokens=256.0, context_length=1024
    )
    speeds = serving_plan.chosen_speeds(PLAN_SCHEMES, "W4A16", serving_plan.SPEED_AUTO, EVALUATION)
    expected = serving_plan.scheme_rows(folder, "h100-sxm", goal, PLAN_SCHEMES, "bf16", speeds)
    assert dialog.model.rows == expected
    by_scheme = {row["scheme"]: i for i, row in enumerate(expected)}
    w4 = expected[by_scheme["W4A16"]]
    i = by_scheme["W4A16"]
    assert w4["speed_source"].startswith("measured") and w4["exact"] and w4["replicas"] > 1
    assert dialog.model.cell(i, COL["Replicas"]) == str(w4["replicas"])
    assert dialog.model.cell(i, COL["GPUs"]) == str(w4["gpus"])
    assert dialog.model.cell(i, COL["GPU-h / day"]) == f"{24 * w4['gpus']:.0f}"
    assert math.isclose(float(dialog.model.cell(i, COL["Weights GiB"])), w4["weights_gib"], rel_tol=1e-3)
    assert dialog.model.cell(i, COL["KV / token"]) == "2.0 KiB"  # 2 · 4 layers · 4 KV heads · 32 · 2 bytes
    bf16 = expected[by_scheme["BF16"]]
    assert bf16["speed_source"].startswith("roofline") and bf16["source"] == "config estimate"
    assert dialog.model.cell(by_scheme["BF16"], COL["Weights from"]) == "config estimate (estimate)"
    # The latency curve of every scheme, and the replay of the chosen (fitting) row follow.
    assert set(dialog.latency_plot.curves) == set(PLAN_SCHEMES)
    qtbot.waitUntil(lambda: "SLO violated" in dialog.replay_summary.text(), timeout=20_000)
    assert dialog.replay_scheme.text() == dialog.selected_row()["scheme"]  # type: ignore[index]
    # A connected cluster's free GPUs (recorded `scontrol -d show node`, testbed Slurm 22.05.8): the
    # replicas are placed on node2's two free H100s and their sbatch scripts shown.
    maint = "\n".join(
        line
        for line in (SLURM_FIXTURES / "scontrol_show_node_maint.txt").read_text().splitlines()
        if not line.startswith("##")
    )
    dialog.placement.set_cluster_view("testbed", gpu_view(parse_nodes(maint), []))
    qtbot.waitUntil(lambda: "testbed:" in dialog.placement.summary.text(), timeout=10_000)
    summary = dialog.placement.summary.text()
    assert "H100" in dialog.gpu_combo.itemText(dialog.gpu_combo.count() - 1)  # the cluster's type listed
    assert "node1: IDLE+MAINTENANCE+RESERVED" in summary
    row = dialog.selected_row()
    assert row is not None and row["scheme"] == "BF16" and row["replicas"] == 1  # the first that is sized
    assert "placed — 1 replica(s), 1 GPU(s) on 1 node(s): node2 ×1" in summary
    preview = dialog.placement.preview.toPlainText()
    assert "#SBATCH --nodelist=node2" in preview and "#SBATCH --gres=gpu:h100:1" in preview
    assert f"vllm serve {folder} --tensor-parallel-size 1 --port 8000 &" in preview  # the job's command
    assert not dialog.placement.submit_button.isEnabled()  # no cluster service here: nothing to submit to
    # The W4A16 row (measured: slow on the CPU it was measured on) needs more than node2's two H100s.
    dialog.table.selectRow(i)
    qtbot.waitUntil(lambda: "do not all fit" in dialog.placement.summary.text(), timeout=10_000)
    assert f"2 of {w4['replicas']} replicas fit" in dialog.placement.summary.text()


def test_bad_input_is_one_line_in_the_dialog(qtbot, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = _open(qtbot, runner, tmp_path / "no-such-model")
    qtbot.waitUntil(lambda: dialog.status_label.text() != "Reading the model…", timeout=10_000)
    text = dialog.status_label.text()
    assert "\n" not in text and "Traceback" not in text and "no-such-model" in text
    assert not dialog.model.rows


def test_plots_follow_a_dark_palette(qtbot, runner, recorded) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QColor, QPalette

    dialog = _open(qtbot, runner, recorded["BF16"])
    dark = QPalette(dialog.palette())
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e0e0e0"))
    dialog.setPalette(dark)
    for layout in (dialog.latency_plot.layout_widget, dialog.replay_plot.layout_widget):
        qtbot.waitUntil(lambda lw=layout: lw.backgroundBrush().color() == QColor("#1e1e1e"), timeout=5_000)
        axis = layout.plots[0].getAxis("bottom")
        assert axis.textPen().color() == QColor("#e0e0e0")
    qtbot.waitUntil(lambda: bool(dialog.model.rows), timeout=20_000)  # let its jobs finish
