"""The New quantization form and the Results view on the real job engine (offscreen Qt, real workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from tests.quantize.conftest import needs_llmcompressor

pytestmark = [needs_llmcompressor]


@pytest.fixture
def app_services(app_paths, qapp):  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_services

    services = create_services(app_paths)
    yield services
    services.shutdown()


@pytest.fixture
def quantize_ui(app_services, qtbot):  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QWidget

    from msquant_desktop.ui.quantize.install import QuantizeUi

    host = QWidget()
    qtbot.addWidget(host)
    ui = QuantizeUi(app_services.quantize, host)
    qtbot.addWidget(ui.results)
    qtbot.waitUntil(lambda: app_services.quantize.worker is not None, timeout=30_000)
    yield ui


def _wait_checked(qtbot, dialog) -> None:  # type: ignore[no-untyped-def]
    """Wait until the form's last check is for exactly what the form shows now."""
    qtbot.waitUntil(
        lambda: (
            dialog._outcome is not None
            and dialog._outcome.request == dialog.request()
            and not dialog._check_timer.isActive()
        ),
        timeout=20_000,
    )


def test_form_validates_model_and_refuses_a_scheme_needing_data_without_data(
    app_services, quantize_ui, qtbot, demo_model: Path, tmp_path: Path
) -> None:
    dialog = quantize_ui.open_form(str(demo_model))
    qtbot.waitExposed(dialog)
    _wait_checked(qtbot, dialog)
    assert (
        "LlamaForCausalLM" in dialog.model_summary.text()
        and "4.2 M parameters" in dialog.model_summary.text()
    )
    assert dialog.dataset_edit.text() == str(
        demo_model / "calibration.jsonl"
    )  # suggested from the demo model
    assert dialog.out_edit.text() == ""  # a new folder in the models folder, outside any run folder
    assert str(app_services.quantize.models_dir) in dialog.out_edit.placeholderText()
    assert dialog.request().out == str(app_services.quantize.models_dir / f"{demo_model.name}-fp8-dynamic")
    assert dialog.memory_label.text().startswith("Memory: ~")
    assert dialog.start_button.isEnabled()

    dialog.select_scheme("GPTQ_W4A16")
    dialog.dataset_edit.clear()
    _wait_checked(qtbot, dialog)
    assert not dialog.start_button.isEnabled()
    assert "calibrates on data: choose a calibration dataset" in dialog.problems_label.text()

    dialog.dataset_edit.setText("HuggingFaceH4/ultrachat_200k")
    _wait_checked(qtbot, dialog)
    assert "works offline" in dialog.problems_label.text() and not dialog.start_button.isEnabled()

    dialog.model_edit.setText(str(tmp_path))
    _wait_checked(qtbot, dialog)
    assert "is not a model folder" in dialog.problems_label.text()
    assert dialog.model_summary.text() == ""
    dialog.close()


def _finished_job(services, spec, result: dict) -> int:  # type: ignore[no-untyped-def]
    """A job the store holds as COMPLETED with `result`, as the engine leaves a finished one."""
    from msquant_desktop.store.jobs_repo import JobRepository

    repo = JobRepository(services.conn)
    record = repo.create(spec, JobState.RUNNING, "recorded by the test")
    repo.transition(record.id, JobState.COMPLETED, "exit 0", exit_code=0, result=result)
    return record.id


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_results_buttons_open_the_form_and_delete_asks_first(
    app_services, quantize_ui, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    from msquant_desktop.domain.jobs import JobKind, JobSpec
    from msquant_desktop.ui.quantize.new_quantization import NewQuantizationDialog

    demo = _model_folder(tmp_path / "demo-model")
    _finished_job(
        app_services,
        JobSpec(name="demo", argv=("true",), meta={"demo_model": "tiny"}),
        {"type": "result", "output": str(demo)},
    )
    results = quantize_ui.results
    results.refresh()
    assert results.stack.currentWidget() is results.empty

    def opened_form() -> NewQuantizationDialog:
        qtbot.waitUntil(lambda: quantize_ui.dialog is not None, timeout=5_000)
        dialog = quantize_ui.dialog
        assert isinstance(dialog, NewQuantizationDialog) and dialog.isVisible()
        return dialog

    # The empty state's first step, then the button under the table: each opens the form for a new
    # quantization on the newest demo model.
    new_in_empty_state = results.empty.buttons[0]
    assert new_in_empty_state.text() == "New quantization…"
    new_in_empty_state.click()
    dialog = opened_form()
    assert dialog.model_edit.text() == str(demo)
    dialog.close()
    qtbot.waitUntil(lambda: quantize_ui.dialog is None, timeout=5_000)

    output = _model_folder(tmp_path / "quantized")
    job_id = _finished_job(
        app_services,
        JobSpec(name="quantize", argv=("true",), kind=JobKind.QUANTIZE),
        {
            "type": "result",
            "kind": "quantize",
            "output": str(output),
            "scheme": "W4A16",
            "model": str(demo),
            "size_before": 4_000_000,
            "size_after": 1_000_000,
            "duration_s": 12.5,
        },
    )
    results.refresh()
    assert results.stack.currentIndex() == 1 and [r.job_id for r in results.model.rows] == [job_id]
    results.new_button.click()
    dialog = opened_form()
    assert dialog.model_edit.text() == str(demo)
    dialog.close()

    # Delete asks before it removes the model folder: "No" keeps both the folder and the row.
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]

    def question(_parent, _title: str, text: str, *_args):  # type: ignore[no-untyped-def]
        asked.append(text)
        return answer[0]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    results.table.selectRow(0)
    assert results.delete_button.isEnabled()
    results.delete_button.click()
    assert asked == [f"Delete {output} and forget job {job_id}?"]
    assert output.is_dir() and [r.job_id for r in results.model.rows] == [job_id]
    answer[0] = QMessageBox.StandardButton.Yes
    results.delete_button.click()
    assert len(asked) == 2
    qtbot.waitUntil(lambda: not output.exists(), timeout=5000)  # removed on a thread
    with pytest.raises(KeyError):
        app_services.jobs.get(job_id)
    assert results.stack.currentWidget() is results.empty


@pytest.mark.quantize
@pytest.mark.slow
def test_form_to_job_to_result_then_verify_and_delete(
    app_services, quantize_ui, qtbot, demo_model: Path
) -> None:
    from msquant_desktop.ui.quantize.results_view import VERIFICATION_COLUMN

    jobs = app_services.jobs
    dialog = quantize_ui.open_form(str(demo_model))
    dialog.select_scheme("W4A16")
    _wait_checked(qtbot, dialog)
    assert quantize_ui.results.stack.currentWidget() is quantize_ui.results.empty
    progress: list[dict] = []
    jobs.sig_job_event.connect(
        lambda _id, event: progress.append(event) if event["type"] == "progress" else None
    )
    with qtbot.waitSignal(dialog.sig_submitted, timeout=10_000) as submitted:
        dialog.start_button.click()
    job_id = submitted.args[0]
    qtbot.waitUntil(lambda: jobs.get(job_id).state.is_final, timeout=240_000)
    record = jobs.get(job_id)
    assert record.state is JobState.COMPLETED, (record.reason, record.run_dir)
    assert progress and progress[-1]["fraction"] == 1.0

    results = quantize_ui.results
    qtbot.waitUntil(lambda: len(results.model.rows) == 1, timeout=10_000)
    row = results.model.rows[0]
    assert row.job_id == job_id and row.result.scheme == "W4A16"
    assert Path(row.result.output).parent == app_services.quantize.models_dir  # outlives its job
    assert (Path(row.result.output) / "config.json").is_file()
    assert results.stack.currentIndex() == 1
    assert results.model.data(results.model.index(0, 5)).endswith("×")

    results.table.selectRow(0)
    assert results.verify_button.isEnabled()
    results.verify_button.click()
    qtbot.waitUntil(
        lambda: results.model.rows and results.model.rows[0].verification is not None, timeout=240_000
    )
    verification = results.model.rows[0].verification
    assert verification["quant_method"] == "compressed-tensors", verification
    assert "top-1" in results.model.data(results.model.index(0, VERIFICATION_COLUMN))

    output = Path(row.result.output)
    results.table.selectRow(0)
    results.delete_selected(confirm=False)
    qtbot.waitUntil(lambda: results.stack.currentWidget() is results.empty, timeout=10_000)
    qtbot.waitUntil(lambda: not output.exists(), timeout=10_000)  # removed on a thread


def test_worker_python_detection_and_the_plain_message_when_none_has_llmcompressor(tmp_path: Path) -> None:
    from msquant_desktop.quantize.environment import detect_worker_environment, probe_python

    system_python = "/usr/bin/python3"
    if not Path(system_python).exists() or probe_python(system_python) is None:
        pytest.skip(f"needs a Python without llmcompressor at {system_python}")
    none = detect_worker_environment(system_python, consider_own=False)
    assert not none.available
    assert f"llmcompressor (or torch) is not installed for {system_python}" in none.message
    assert f'{system_python} -m pip install "llmcompressor>=0.14,<0.15" "torch==2.13.0"' in none.message
    missing = detect_worker_environment(str(tmp_path / "nope"), consider_own=False)
    assert "does not exist" in missing.message and not missing.available
    # A Python that has it, given in Settings (a child process checks it, nothing is imported here).
    import sys

    other = detect_worker_environment(sys.executable, consider_own=False)
    assert other.available and not other.own_interpreter
    argv, env = other.command("quantize", "--model", "m")
    assert (
        argv[:3] == (sys.executable, "-m", "msquant_desktop.quantize.worker_quantize")
        and env[0][0] == "PYTHONPATH"
    )
    # This app's own interpreter has llmcompressor, so it wins, found without importing it.
    own = detect_worker_environment(system_python)
    assert own.available and own.own_interpreter


@pytest.mark.quantize
@pytest.mark.slow
def test_cancel_through_the_engine_during_calibration_leaves_no_result(
    app_services, quantize_ui, qtbot, demo_model: Path
) -> None:
    from msquant_desktop.domain.quantize import QuantizeRequest
    from msquant_desktop.services.quantize_service import DEFAULT_OUTPUT

    jobs = app_services.jobs
    calibrating: list[int] = []
    jobs.sig_job_event.connect(
        lambda job_id, event: calibrating.append(job_id) if event.get("phase") == "Calibrating" else None
    )
    request = QuantizeRequest(
        str(demo_model), "GPTQ_W4A16", DEFAULT_OUTPUT, str(demo_model / "calibration.jsonl"), 128, 256
    )
    record = app_services.quantize.submit(request)
    qtbot.waitUntil(lambda: record.id in calibrating, timeout=240_000)
    jobs.cancel(record.id)
    qtbot.waitUntil(lambda: jobs.get(record.id).state.is_final, timeout=60_000)
    final = jobs.get(record.id)
    assert final.state is JobState.CANCELLED, final.reason
    run_dir = Path(str(final.run_dir))
    assert not (run_dir / "quantized").exists() and not (run_dir / "quantized.partial").exists()
    quantize_ui.results.refresh()
    assert quantize_ui.results.model.rows == []


@pytest.mark.quantize
@pytest.mark.slow
def test_demo_model_built_as_a_job_prefills_the_form(app_services, quantize_ui, qtbot) -> None:
    jobs = app_services.jobs
    added: list[int] = []
    jobs.sig_job_added.connect(added.append)
    quantize_ui.demo_action.trigger()
    assert added, quantize_ui.results.empty.message_label.text()
    qtbot.waitUntil(lambda: jobs.get(added[0]).state.is_final, timeout=240_000)
    assert jobs.get(added[0]).state is JobState.COMPLETED, jobs.get(added[0]).reason
    demo = app_services.quantize.latest_demo_model()
    assert demo is not None and Path(demo) == app_services.quantize.models_dir / "demo-tiny"
    assert (Path(demo) / "config.json").is_file()
    dialog = quantize_ui.open_form()
    assert dialog.model_edit.text() == demo
    _wait_checked(qtbot, dialog)
    assert dialog.start_button.isEnabled(), dialog.problems_label.text()
    dialog.close()
