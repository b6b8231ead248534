"""Where "Plan serving…" opens from: the Tools menu (any model folder) and a Results row."""

from __future__ import annotations

from pathlib import Path

from msquant_desktop.domain.quantize import QuantizeResult
from msquant_desktop.services.quantize_results import ResultRow
from tests.plan.conftest import materialize


def test_results_row_opens_the_planner_on_its_output(main_window, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = main_window
    plan_ui = window.plan_ui
    assert plan_ui is not None
    tools = [a.menu() for a in window.menuBar().actions() if a.text() == "&Tools"]
    assert tools and plan_ui.action in tools[0].actions()
    results = window.quantize_ui.results
    assert not results.plan_button.isHidden()  # installed by the window
    output = materialize("demo-tiny-GPTQ_W4A16", tmp_path)
    row = ResultRow(7, QuantizeResult(str(output), "GPTQ_W4A16", "/models/demo-tiny", 100, 40, 1.0, 0), "")
    dialog = plan_ui.open_for_result(row)
    assert "job 7" in dialog.windowTitle() and dialog.isVisible()
    qtbot.waitUntil(lambda: bool(dialog.model.rows), timeout=20_000)
    assert dialog.folder_scheme == "GPTQ_W4A16"
    assert "no evaluation" in dialog.source_label.text().lower()  # roofline: nothing measured yet
    dialog.close()
    qtbot.waitUntil(lambda: not plan_ui.dialogs, timeout=5_000)
