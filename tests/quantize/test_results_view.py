"""The Results view keeps itself up to date row by row, on the real job engine and store.

The jobs are real child processes that print what a quantization and a verification print (their
`result` events), so this runs without llmcompressor; the real workers run in test_quantize_gui.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msquant_desktop.domain.jobs import JobKind, JobSpec, JobState


@pytest.fixture
def engine(app_paths, qapp) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from msquant_desktop.config.settings_store import save_settings
    from msquant_desktop.domain.settings import Settings
    from msquant_desktop.services.job_service import JobService
    from msquant_desktop.services.settings_service import SettingsService
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository

    save_settings(app_paths.settings_file, Settings(max_concurrent_jobs=2, cancel_grace_seconds=2.0))
    conn = connect(app_paths.database)
    settings = SettingsService(app_paths.settings_file)
    service = JobService(JobRepository(conn), app_paths, settings, gpu_count=0)
    service.start()
    yield service, settings
    service.shutdown(cancel_running=True)
    conn.close()


def _printing(event: dict[str, Any], before: str = "") -> tuple[str, ...]:
    script = f"{before}\nimport json\nprint('@@MSQUANT-EVENT@@ ' + json.dumps({event!r}), flush=True)\n"
    return (sys.executable, "-c", script)


QUANTIZE_SCRIPT = """
import json, os
out = os.path.abspath('quantized')
os.makedirs(out)
open(os.path.join(out, 'config.json'), 'w').write('{}')
event = {'type': 'result', 'kind': 'quantize', 'output': out, 'scheme': 'W4A16', 'model': '/models/tiny',
         'size_before': 8_000_000, 'size_after': 2_000_000, 'duration_s': 1.5}
print('@@MSQUANT-EVENT@@ ' + json.dumps(event), flush=True)
"""


def _wait_final(qtbot, jobs, job_id: int) -> JobState:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: jobs.get(job_id).state.is_final, timeout=20_000)
    return jobs.get(job_id).state  # type: ignore[no-any-return]


def test_results_update_row_by_row_and_ignore_other_jobs_without_reading_them(engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.ui.quantize.results_view import VERIFICATION_COLUMN, ResultsView

    jobs, settings = engine

    # A job that is not a quantization, running before the results are loaded.
    other = jobs.submit(JobSpec(name="unrelated", argv=("sleep", "60")))
    qtbot.waitUntil(lambda: jobs.get(other.id).state is JobState.RUNNING, timeout=10_000)

    # Every statement the quantize service runs while it handles a job signal, by job id: slots run
    # in the order they were connected, so these probes bracket the service's own slots.
    reads: dict[int, list[str]] = {}
    handling: list[int] = []
    for signal in (jobs.sig_job_added, jobs.sig_job_changed, jobs.sig_job_removed):
        signal.connect(lambda job_id: handling.append(job_id))
    quantize = QuantizeService(jobs, settings)
    for signal in (jobs.sig_job_added, jobs.sig_job_changed, jobs.sig_job_removed):
        signal.connect(lambda _id: handling.clear())
    jobs._repo.connection.set_trace_callback(
        lambda sql: reads.setdefault(handling[0], []).append(sql) if handling else None
    )

    view = ResultsView(quantize, lambda: None)
    qtbot.addWidget(view)
    assert view.stack.currentWidget() is view.empty and view.model.rows == []
    model = view.model
    seen: dict[str, list[Any]] = {"reset": [], "inserted": [], "removed": [], "changed": []}
    model.modelReset.connect(lambda: seen["reset"].append(True))
    model.rowsInserted.connect(lambda _p, first, last: seen["inserted"].append((first, last)))
    model.rowsRemoved.connect(lambda _p, first, last: seen["removed"].append((first, last)))
    model.dataChanged.connect(lambda a, b, _r: seen["changed"].append((a.row(), b.row())))

    # A quantization: while it runs only its light summary is read; when it completes, one row.
    quant = jobs.submit(
        JobSpec(name="Quantize tiny", argv=(sys.executable, "-c", QUANTIZE_SCRIPT), kind=JobKind.QUANTIZE)
    )
    assert _wait_final(qtbot, jobs, quant.id) is JobState.COMPLETED
    qtbot.waitUntil(lambda: len(model.rows) == 1)
    assert seen == {"reset": [], "inserted": [(0, 0)], "removed": [], "changed": []}
    row = model.rows[0]
    assert row.job_id == quant.id and row.result.scheme == "W4A16" and row.output_exists
    assert model.data(model.index(0, 5)) == "4.00×" and view.stack.currentIndex() == 1
    full_reads = [sql for sql in reads[quant.id] if sql.startswith("SELECT * FROM jobs")]
    assert len(full_reads) <= 2, full_reads  # only once it says COMPLETED

    # A job of another kind, known from the load: its changes are ignored without a single read.
    jobs.cancel(other.id)
    assert _wait_final(qtbot, jobs, other.id) is JobState.CANCELLED
    assert reads.get(other.id, []) == []
    # A new job of another kind: one light read says what it is, then it is ignored.
    late = jobs.submit(JobSpec(name="late", argv=("true",)))
    assert _wait_final(qtbot, jobs, late.id) is JobState.COMPLETED
    assert len(reads[late.id]) == 1 and not reads[late.id][0].startswith("SELECT * FROM jobs")
    assert seen["inserted"] == [(0, 0)] and seen["changed"] == [] and seen["reset"] == []

    # A verification of it: the row shows "verifying…", then what it found: dataChanged on that row.
    shown: list[str] = []
    quantize.sig_result_changed.connect(
        lambda _row: shown.append(model.data(model.index(0, VERIFICATION_COLUMN)))
    )
    verify_event = {"type": "result", "kind": "verify", "load_s": 0.5}
    verify = jobs.submit(
        JobSpec(
            name="Verify",
            argv=_printing(verify_event, before="import time; time.sleep(0.3)"),
            kind=JobKind.VERIFY,
            meta={"verifies": quant.id},
        )
    )
    assert _wait_final(qtbot, jobs, verify.id) is JobState.COMPLETED
    qtbot.waitUntil(lambda: model.rows[0].verification is not None)
    assert "verifying…" in shown and shown[-1] == "loads in 0.5 s"
    assert seen["changed"] and set(seen["changed"]) == {(0, 0)}
    assert seen["inserted"] == [(0, 0)] and seen["reset"] == [] and seen["removed"] == []

    # A newer verification that fails is what the row shows now (the newest finished one wins).
    failing = jobs.submit(
        JobSpec(
            name="Verify again",
            argv=(sys.executable, "-c", "raise SystemExit(3)"),
            kind=JobKind.VERIFY,
            meta={"verifies": quant.id},
        )
    )
    assert _wait_final(qtbot, jobs, failing.id) is JobState.FAILED
    qtbot.waitUntil(lambda: model.data(model.index(0, VERIFICATION_COLUMN)) == "failed (exit 3)")
    assert seen["inserted"] == [(0, 0)] and seen["reset"] == [] and set(seen["changed"]) == {(0, 0)}
    jobs.delete(failing.id)  # forgetting it brings the earlier verification back
    assert model.data(model.index(0, VERIFICATION_COLUMN)) == "loads in 0.5 s"

    # Delete: the model folder goes, and so does the one row (no reset).
    view.table.selectRow(0)
    assert view.delete_button.isEnabled()
    view.delete_selected(confirm=False)
    qtbot.waitUntil(lambda: not Path(row.result.output).exists(), timeout=5000)  # removed on a thread
    assert seen["removed"] == [(0, 0)] and seen["reset"] == [] and model.rows == []
    assert view.stack.currentWidget() is view.empty and not view.delete_button.isEnabled()
    # Deleting its verification afterwards changes nothing shown.
    jobs.delete(verify.id)
    assert seen["removed"] == [(0, 0)] and seen["changed"].count((0, 0)) == len(seen["changed"])

    jobs._repo.connection.set_trace_callback(None)
    quantize.shutdown()


def _evaluation_event(perplexity: float, original: float, decode: float) -> dict[str, Any]:
    return {
        "type": "result",
        "kind": "evaluate",
        "perplexity": perplexity,
        "original_perplexity": original,
        "tokens_evaluated": 254,
        "top1_agreement": 0.97,
        "kl_divergence": 0.001,
        "load_s": 0.2,
        "prefill_tokens_per_s": 900.0,
        "decode_tokens_per_s": decode,
        "decode_tokens_per_s_batch8": decode * 3,
        "peak_memory_mib": 412.4,
        "device": "cpu",
        "seq_len": 128,
        "text": "demo held-out split",
    }


def _quantization(jobs, qtbot, scheme: str, size_after: int) -> int:  # type: ignore[no-untyped-def]
    script = QUANTIZE_SCRIPT.replace("'W4A16'", repr(scheme)).replace("2_000_000", str(size_after))
    script = script.replace("'quantized'", repr(f"quantized-{scheme}"))
    record = jobs.submit(
        JobSpec(name=f"Quantize {scheme}", argv=(sys.executable, "-c", script), kind=JobKind.QUANTIZE)
    )
    assert _wait_final(qtbot, jobs, record.id) is JobState.COMPLETED, jobs.get(record.id).reason
    return record.id  # type: ignore[no-any-return]


def test_evaluations_fill_their_cells_and_the_chart_draws_one_point_per_scheme(engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.ui.quantize.results_view import COLUMNS, PERPLEXITY_COLUMN, ResultsView

    jobs, settings = engine
    quantize = QuantizeService(jobs, settings)
    view = ResultsView(quantize, lambda: None)
    qtbot.addWidget(view)
    model = view.model
    w8 = _quantization(jobs, qtbot, "W8A16", 4_000_000)
    w4 = _quantization(jobs, qtbot, "W4A16", 2_000_000)
    qtbot.waitUntil(lambda: len(model.rows) == 2)

    def cells(at: int) -> list[str]:
        return [model.data(model.index(at, c)) for c in range(PERPLEXITY_COLUMN, PERPLEXITY_COLUMN + 4)]

    assert cells(0) == ["", "", "", ""] and view.chart.current is not None and view.chart.current.points == ()
    changed: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda a, b, _r: changed.append((a.row(), a.column(), b.row(), b.column())))
    reset: list[bool] = []
    model.modelReset.connect(lambda: reset.append(True))

    # An evaluation of the W4A16 result (row 0): "evaluating…" while it runs, then its figures.
    shown: list[str] = []
    quantize.sig_result_changed.connect(lambda _row: shown.append(cells(0)[0]))
    evaluation = jobs.submit(
        JobSpec(
            name="Evaluate W4A16",
            argv=_printing(_evaluation_event(2.4905, 2.4612, 95.61), before="import time; time.sleep(0.3)"),
            kind=JobKind.EVALUATE,
            meta={"evaluates": w4},
        )
    )
    assert _wait_final(qtbot, jobs, evaluation.id) is JobState.COMPLETED
    qtbot.waitUntil(lambda: cells(0)[0] == "2.4905")
    assert "evaluating…" in shown
    assert cells(0) == ["2.4905", "+0.0293", "95.6", "412"] and cells(1) == ["", "", "", ""]
    # Only the evaluation cells of that one row were repainted (no reset, no whole-row span).
    assert reset == [] and changed
    assert {(r0, r1) for r0, c0, r1, c1 in changed} == {(0, 0)}
    assert all(c0 >= PERPLEXITY_COLUMN and c1 < COLUMNS.index("Verification") for _r0, c0, _r1, c1 in changed)

    # The chart of their base model: one point for W4A16 so far, the original as reference.
    view.table.selectRow(0)
    chart = view.chart
    assert chart.base_model() == "/models/tiny"
    assert [(p.scheme, p.perplexity) for p in chart.current.points] == [("W4A16", 2.4905)]
    assert chart.current.original_perplexity == 2.4612 and chart.current.original_size == 8_000_000
    assert [label.toPlainText() for label in chart.labels] == ["original", "W4A16"]

    # W8A16's evaluation fails at first (its cell says so), then a retry succeeds: two points.
    failing = jobs.submit(
        JobSpec(
            name="Evaluate W8A16",
            argv=(sys.executable, "-c", "raise SystemExit(2)"),
            kind=JobKind.EVALUATE,
            meta={"evaluates": w8},
        )
    )
    assert _wait_final(qtbot, jobs, failing.id) is JobState.FAILED
    qtbot.waitUntil(lambda: cells(1)[0].startswith("failed ("))
    assert cells(1) == [f"failed ({jobs.get(failing.id).outcome.describe()})", "", "", ""], cells(1)
    retry = jobs.submit(
        JobSpec(
            name="Evaluate W8A16 again",
            argv=_printing(_evaluation_event(2.4633, 2.4612, 80.0)),
            kind=JobKind.EVALUATE,
            meta={"evaluates": w8},
        )
    )
    assert _wait_final(qtbot, jobs, retry.id) is JobState.COMPLETED
    qtbot.waitUntil(lambda: cells(1)[0] == "2.4633")
    assert [(p.scheme, p.size_bytes) for p in chart.current.points] == [
        ("W4A16", 2_000_000),
        ("W8A16", 4_000_000),
    ]
    assert [label.toPlainText() for label in chart.labels] == ["original", "W4A16", "W8A16"]
    assert "2 scheme(s) of /models/tiny" in chart.caption.text() and reset == []

    # A full reload shows the same (the index's rule is the CLI's: the newest finished evaluation).
    from msquant_desktop.cli.results import row_cells
    from msquant_desktop.domain.results import result_listings

    listings = {listing.job_id: row_cells(listing)[3:5] for listing in result_listings(jobs.list_jobs())}
    assert listings == {w4: ["2.4905", "+0.0293"], w8: ["2.4633", "+0.0021"]}
    view.refresh()
    assert cells(0)[:2] == listings[w4] and cells(1)[:2] == listings[w8]
    quantize.shutdown()


def test_the_empty_state_follows_the_demo_build_to_its_end(engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    """It said "Building the demo model as job 1" long after that job had ended: it follows the job now.

    The worker Python is a real program that ends at once (`false`, then `true`), so both endings are
    real job endings without building a model."""
    import shutil

    from msquant_desktop.quantize.environment import WorkerEnvironment
    from msquant_desktop.services.quantize_service import QuantizeService
    from msquant_desktop.ui.quantize.results_view import ResultsView

    jobs, settings = engine
    quantize = QuantizeService(jobs, settings)
    view = ResultsView(quantize, lambda: None)
    qtbot.addWidget(view)
    for program, expected in (("false", "did not finish: exit 1"), ("true", "The demo model is ready")):
        quantize.worker = WorkerEnvironment(shutil.which(program), False, "")
        view.build_demo_model()
        job_id = jobs.summaries()[0].id
        assert view.empty.message_label.text().startswith(f"Building the demo model as job {job_id}")
        _wait_final(qtbot, jobs, job_id)
        qtbot.waitUntil(lambda e=expected: e in view.empty.message_label.text(), timeout=5000)
        assert f"job {job_id}" in view.empty.message_label.text()
    jobs.delete(jobs.summaries()[0].id)  # the build it spoke of is gone: back to the first words
    assert view.empty.message_label.text().startswith("Quantize a local Hugging Face model")
    quantize.shutdown()
