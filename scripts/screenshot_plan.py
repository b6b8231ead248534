"""Render "Plan serving…" offscreen for a Llama-3-8B config.json; save docs/plan-serving.png.

    PYTHONPATH=$PWD .venv/bin/python scripts/screenshot_plan.py [MODEL_DIR_OR_CONFIG] [OUT.png]

Without a model, a folder holding only Llama-3-8B's public config.json is planned (so every figure is
labelled a config estimate).  The placement tab is shown on the testbed's recorded `scontrol -d show
node` output (tests/slurm/fixtures/scontrol_show_node_maint.txt) in OUT's sibling `*-placement.png`,
and the confirmation "Submit N replicas…" opens (the scripts that would be sent) in `*-submit.png`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from msquant_desktop.services.plan_runner import PlanRunner
from msquant_desktop.slurm.gpus import gpu_view
from msquant_desktop.slurm.parsers import parse_nodes
from msquant_desktop.ui.plan.replica_confirm import ReplicaConfirmDialog
from msquant_desktop.ui.plan.serving_dialog import PlanSubject, ServingPlanDialog

LLAMA3_8B = {  # the public config.json of meta-llama/Meta-Llama-3-8B (the fields the planner reads)
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
FIXTURE = Path(__file__).parents[1] / "tests" / "slurm" / "fixtures" / "scontrol_show_node_maint.txt"


def _settle(app: QApplication, done: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done():  # type: ignore[operator]
        app.processEvents()
        time.sleep(0.02)
    end = time.monotonic() + 1.0  # let pyqtgraph finish its deferred range and path updates
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/plan-serving.png")
    app = QApplication.instance() or QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "Meta-Llama-3-8B"
        if len(sys.argv) <= 1:
            model.mkdir()
            (model / "config.json").write_text(json.dumps(LLAMA3_8B))
        runner = PlanRunner()
        dialog = ServingPlanDialog(PlanSubject(str(model), title="Meta-Llama-3-8B (config only)"), runner)
        dialog.resize(1400, 900)
        dialog.show()
        _settle(app, lambda: bool(dialog.model.rows))
        dialog.rate_spin.setValue(40.0)
        dialog.slo_spin.setValue(20.0)
        _settle(app, lambda: dialog.goal is not None and dialog.goal.arrival_rate == 40.0)
        dialog.table.selectRow(3)  # W4A16
        dialog.tabs.setCurrentIndex(1)
        _settle(
            app,
            lambda: (
                "SLO violated" in dialog.replay_summary.text() and "W4A16" in dialog.replay_summary.text()
            ),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        dialog.grab().save(str(out))
        text = "\n".join(ln for ln in FIXTURE.read_text().splitlines() if not ln.startswith("##"))
        dialog.placement.set_cluster_view("testbed", gpu_view(parse_nodes(text), []))
        dialog.tabs.setCurrentIndex(2)
        _settle(app, lambda: "testbed:" in dialog.placement.summary.text())
        placement_out = out.with_name(out.stem + "-placement.png")
        dialog.grab().save(str(placement_out))
        plan = dialog.placement.plan
        assert plan is not None
        confirm = ReplicaConfirmDialog(plan, dialog.placement.cluster_profile("testbed"))
        confirm.show()
        _settle(app, lambda: True)
        submit_out = out.with_name(out.stem + "-submit.png")
        confirm.grab().save(str(submit_out))
        confirm.close()
        dialog.close()
        runner.shutdown()
    print(f"saved {out}, {placement_out} and {submit_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
