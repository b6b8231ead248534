"""Compare schemes…, Evaluate and the Hugging Face cache picker in the real app services (offscreen Qt),
with real quantize and evaluate workers on the tiny demo model."""

from __future__ import annotations

from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobKind, JobState
from tests.quantize.conftest import needs_llmcompressor
from tests.quantize.test_hf_cache import MAIN, cache_repo
from tests.quantize.test_quantize_gui import _wait_checked, app_services, quantize_ui  # noqa: F401

pytestmark = [needs_llmcompressor]


def _evaluations(jobs) -> list:  # type: ignore[no-untyped-def]
    return [r for r in jobs.list_jobs() if r.spec.kind is JobKind.EVALUATE]


@pytest.mark.quantize
@pytest.mark.slow
def test_compare_schemes_quantizes_evaluates_each_after_its_quantization_and_charts_them(
    app_services,  # noqa: F811
    quantize_ui,  # noqa: F811
    qtbot,
    demo_model: Path,
) -> None:
    from msquant_desktop.domain.evaluate import EvaluateRequest
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.ui.quantize.results_view import PERPLEXITY_COLUMN

    jobs, service, results = app_services.jobs, app_services.quantize, quantize_ui.results
    dialog = quantize_ui.open_compare_form(str(demo_model))
    qtbot.waitExposed(dialog)
    assert dialog.schemes() == ["W8A16", "W4A16"]  # the defaults: data-free, seconds each
    # Small windows, no speed runs: the test is about the chain, not the figures.
    dialog.seq_len_spin.setValue(128)
    dialog.windows_spin.setValue(2)
    dialog.speed_box.setChecked(False)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
    with qtbot.waitSignal(dialog.sig_submitted, timeout=10_000) as submitted:
        dialog.start_button.click()
    base, quantize_ids = submitted.args
    assert base == str(demo_model.resolve()) and len(quantize_ids) == 2
    # It ends in the chart of that model, shown before any result is in.
    assert results.stack.currentIndex() == 1 and results.chart.base_model() == base
    # No evaluation is queued before its quantization completed.
    assert _evaluations(jobs) == []

    def evaluated() -> bool:
        evaluations = _evaluations(jobs)
        return len(evaluations) == 2 and all(r.state.is_final for r in evaluations)

    qtbot.waitUntil(evaluated, timeout=300_000)
    evaluations = _evaluations(jobs)
    assert all(r.state is JobState.COMPLETED for r in evaluations), [(r.id, r.reason) for r in evaluations]
    for evaluation in evaluations:
        target = jobs.get(evaluation.spec.meta["evaluates"])
        assert target.id in quantize_ids and target.state is JobState.COMPLETED
        assert evaluation.created_at >= target.finished_at  # queued once its quantization was done
        result = evaluation.result
        assert result["original"] == base and result["seq_len"] == 128 and result["windows"] == 2
        # The held-out split came along with the quantized model (not only through --original).
        assert result["text_files"] == [str(Path(target.result["output"]) / "heldout.jsonl")]
        # Quantization does not make the model better than its original, beyond noise.
        assert result["perplexity"] >= result["original_perplexity"] * 0.995

    qtbot.waitUntil(lambda: len(results.model.rows) == 2 and all(r.evaluated for r in results.model.rows))
    model = results.model
    for at in range(2):
        perplexity, delta = (model.data(model.index(at, PERPLEXITY_COLUMN + i)) for i in range(2))
        assert float(perplexity) > 1 and delta.startswith(("+", "-")), (perplexity, delta)
    chart = results.chart
    assert chart.base_model() == base
    assert sorted(p.scheme for p in chart.current.points) == ["W4A16", "W8A16"]
    assert [p.scheme for p in chart.current.points] == ["W4A16", "W8A16"]  # by size: 4 bits first
    assert chart.current.original_perplexity == pytest.approx(evaluations[0].result["original_perplexity"])
    assert sorted(label.toPlainText() for label in chart.labels) == ["W4A16", "W8A16", "original"]
    assert "perplexity on heldout.jsonl, 128-token windows" in chart.caption.text()

    # Evaluate on a row queues one more evaluation (against the base model) that the row then shows.
    service.evaluation_defaults = EvaluateRequest(model="", seq_len=64, max_windows=1, speed=False)
    results.table.selectRow(0)
    assert results.evaluate_button.isEnabled()
    results.evaluate_button.click()
    assert "Evaluation started as job" in results.status_label.text()
    newest = max(_evaluations(jobs), key=lambda r: r.id)
    assert newest.spec.meta["evaluates"] == results.model.rows[0].job_id
    argv = list(newest.spec.argv)
    assert argv[argv.index("--original") + 1] == base and argv[argv.index("--seq-len") + 1] == "64"
    qtbot.waitUntil(lambda: results.model.rows[0].evaluating, timeout=10_000)
    assert not results.evaluate_button.isEnabled()  # one at a time per row
    qtbot.waitUntil(lambda: jobs.get(newest.id).state.is_final, timeout=120_000)
    qtbot.waitUntil(lambda: results.model.rows[0].evaluation.get("seq_len") == 64, timeout=10_000)

    # After a restart nothing is queued again: each asked-for evaluation exists already (the load
    # comes before the worker Python is known, as at start-up; its detection looks again).
    count = len(_evaluations(jobs))
    again = QuantizeService(jobs, app_services.settings)
    assert len(again.results()) == 2
    with qtbot.waitSignal(again.sig_worker_environment, timeout=30_000):
        again.detect_worker()
    qtbot.wait(200)
    assert again.worker is not None and again.worker.available and len(_evaluations(jobs)) == count
    again.shutdown()


def test_the_forms_list_models_from_the_hugging_face_cache_and_resolve_hub_names_offline(
    app_services,  # noqa: F811
    quantize_ui,  # noqa: F811
    qtbot,
    demo_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = cache_repo(cache, "demo-org/demo-tiny", demo_model, MAIN, refs=("main",))

    dialog = quantize_ui.open_form(str(tmp_path / "nothing-here"))
    picker = dialog.cache_picker
    qtbot.waitUntil(lambda: picker.listing is not None and picker.isEnabled(), timeout=30_000)
    assert picker.labels()[1].startswith(f"demo-org/demo-tiny @ {MAIN[:10]} (main) · ")
    picker.choose(1)
    assert dialog.model_edit.text() == str(snapshot)
    dialog.select_scheme("W4A16")
    _wait_checked(qtbot, dialog)
    assert "LlamaForCausalLM" in dialog.model_summary.text() and dialog.start_button.isEnabled()

    # A hub name: offline, the snapshot refs/main names; one not in the cache gets today's command.
    dialog.model_edit.setText("demo-org/demo-tiny")
    _wait_checked(qtbot, dialog)
    assert dialog._outcome.report.model.path == snapshot and dialog.start_button.isEnabled()
    dialog.model_edit.setText("demo-org/not-downloaded")
    _wait_checked(qtbot, dialog)
    assert "`hf download demo-org/not-downloaded`" in dialog.problems_label.text()
    assert not dialog.start_button.isEnabled()
    dialog.close()

    # The Compare schemes form lists the same cache.
    compare = quantize_ui.open_compare_form()
    qtbot.waitUntil(lambda: compare.cache_picker.isEnabled(), timeout=30_000)
    compare.cache_picker.choose(1)
    assert compare.model_edit.text() == str(snapshot)
    compare.close()


def test_the_evaluate_form_checks_with_the_workers_rule_and_queues_an_evaluation(
    app_services,  # noqa: F811
    quantize_ui,  # noqa: F811
    qtbot,
    demo_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    snapshot = cache_repo(cache, "demo-org/demo-tiny", demo_model, MAIN, refs=("main",))
    jobs = app_services.jobs
    dialog = quantize_ui.open_evaluate_form(str(demo_model))

    def checked() -> str:
        qtbot.waitUntil(
            lambda: (
                dialog._checked is not None
                and dialog._checked[0] == dialog.request()
                and not dialog._check_timer.isActive()
            ),
            timeout=20_000,
        )
        return dialog._checked[1]  # type: ignore[no-any-return]

    assert checked() == ""  # the demo model ships its held-out split
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=30_000)
    # Bad input is named before anything runs: a window longer than the model's context, a text
    # that is not UTF-8.
    dialog.seq_len_spin.setValue(4096)
    assert "longer than the model's context" in checked() and not dialog.start_button.isEnabled()
    dialog.seq_len_spin.setValue(64)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    dialog.text_edit.setText(str(latin1))
    assert "UTF-8" in checked() and dialog.problems_label.isVisible()
    dialog.text_edit.clear()
    # The original from the cache list: the same demo model's cached snapshot.
    qtbot.waitUntil(lambda: dialog.original_picker.isEnabled(), timeout=30_000)
    dialog.original_picker.choose(1)
    assert dialog.original_edit.text() == str(snapshot) and checked() == ""
    dialog.windows_spin.setValue(1)
    dialog.speed_box.setChecked(False)
    assert checked() == ""
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(dialog.sig_submitted, timeout=10_000) as submitted:
        dialog.start_button.click()
    record = jobs.get(submitted.args[0])
    assert record.spec.kind is JobKind.EVALUATE and "evaluates" not in record.spec.meta
    argv = list(record.spec.argv)
    assert argv[argv.index("--original") + 1] == str(snapshot) and "--no-speed" in argv
    qtbot.waitUntil(lambda: jobs.get(record.id).state.is_final, timeout=120_000)
    finished = jobs.get(record.id)
    assert finished.state is JobState.COMPLETED, finished.reason
    assert finished.result["windows"] == 1 and finished.result["top1_agreement"] == 1.0


def test_an_asked_for_evaluation_left_by_a_closed_app_is_queued_once_the_worker_is_found(
    app_services,  # noqa: F811
    qtbot,
    tmp_path: Path,
) -> None:
    """The quantization completed while no app watched it (its supervisor outlives the window): the
    next start queues its evaluation, once, as soon as it knows a worker Python."""
    from msquant_desktop.domain.jobs import JobSpec
    from msquant_desktop.services.quantize_service import QuantizeService
    from tests.quantize.test_quantize_gui import _finished_job, _model_folder

    output = _model_folder(tmp_path / "quantized")
    asked = {"seq_len": 64, "max_windows": 1, "speed": False, "texts": [], "device": "auto"}
    spec = JobSpec(name="quantize", argv=("true",), kind=JobKind.QUANTIZE, meta={"evaluate_after": asked})
    event = {"type": "result", "kind": "quantize", "output": str(output), "scheme": "W4A16"}
    quantize_id = _finished_job(
        app_services,
        spec,
        {**event, "model": "/models/base", "size_before": 8, "size_after": 2, "duration_s": 1.0},
    )
    jobs = app_services.jobs
    service = QuantizeService(jobs, app_services.settings)
    assert [r.job_id for r in service.results()] == [quantize_id] and _evaluations(jobs) == []
    with qtbot.waitSignal(service.sig_worker_environment, timeout=30_000):
        service.detect_worker()
    qtbot.waitUntil(lambda: len(_evaluations(jobs)) == 1, timeout=10_000)
    evaluation = _evaluations(jobs)[0]
    assert evaluation.spec.meta["evaluates"] == quantize_id
    argv = list(evaluation.spec.argv)
    assert (
        argv[argv.index("--model") + 1] == str(output)
        and argv[argv.index("--original") + 1] == "/models/base"
    )
    assert argv[argv.index("--seq-len") + 1] == "64" and "--no-speed" in argv
    service.results()  # a reload queues nothing more
    assert len(_evaluations(jobs)) == 1
    qtbot.waitUntil(lambda: jobs.get(evaluation.id).state.is_final, timeout=60_000)  # a bad folder: exit 2
    service.shutdown()
