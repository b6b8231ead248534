"""Progress events from a recorded stderr of a real GPTQ run on the tiny demo model."""

from __future__ import annotations

from pathlib import Path

from msquant_desktop.domain.quantize import QuantizeRequest, format_event, parse_event
from msquant_desktop.quantize.progress import ProgressTracker

FIXTURE = Path(__file__).parent / "fixtures" / "gptq_tiny_stderr.txt"


def test_bars_become_monotonic_progress_with_eta() -> None:
    events: list[dict] = []
    now = [0.0]

    def clock() -> float:
        now[0] += 0.1
        return now[0]

    tracker = ProgressTracker(events.append, min_interval_s=0.25, clock=clock)
    text = FIXTURE.read_text(encoding="utf-8")
    for start in range(0, len(text), 37):  # arbitrary chunking, as writes arrive
        tracker.feed_stderr(text[start : start + 37])
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    calibrating = [e for e in events if e.get("phase") == "Calibrating"]
    assert {e["layer"] for e in calibrating} == {1, 2, 3, 4, 5} and calibrating[0]["layers"] == 5
    assert calibrating[-1]["stage"] == "Calibrating layer 5/5"
    assert any(e["eta_s"] is not None and e["eta_s"] > 0 for e in events)
    assert events[-1]["phase"] == "Compressing"


def test_gptq_module_lines_become_stage_events() -> None:
    events: list[dict] = []
    tracker = ProgressTracker(events.append)
    tracker.feed_log("Quantizing 1 module(s): ['model.layers.3.mlp.down_proj']")
    tracker.feed_log("time 0.07s")
    assert events == [{"type": "stage", "stage": "GPTQ", "module": "model.layers.3.mlp.down_proj"}]


def test_event_lines_round_trip_and_ordinary_lines_are_not_events() -> None:
    event = {"type": "progress", "stage": "x", "fraction": 0.5, "eta_s": None}
    assert parse_event(format_event(event)) == event
    assert parse_event("2026-11-23T10:50:28 | f | INFO - hello") is None
    assert parse_event("@@MSQUANT-EVENT@@ not json") is None


def test_request_round_trips_to_worker_arguments() -> None:
    from argparse import ArgumentParser

    from msquant_desktop.quantize.args import add_quantize_arguments, request_from_args

    request = QuantizeRequest(
        "m",
        "GPTQ_W4A16",
        "{run_dir}/quantized",
        dataset="d.jsonl",
        samples=8,
        seq_len=64,
        ignore=("lm_head", "re:.*gate"),
    )
    parser = ArgumentParser()
    add_quantize_arguments(parser)
    assert request_from_args(parser.parse_args(request.to_args())) == request
    empty = QuantizeRequest("m", "W8A16", "o", ignore=())
    assert request_from_args(parser.parse_args(empty.to_args())) == empty


def test_sigkill_without_cancel_is_explained_as_a_probable_oom_kill() -> None:
    from msquant_desktop.domain.quantize import explain_worker_exit

    assert "OOM killer" in (explain_worker_exit(-9, cancelled=False) or "")
    assert explain_worker_exit(-9, cancelled=True) is None  # the user asked for it
    assert explain_worker_exit(-15, cancelled=True) is None
    assert "inputs have problems" in (explain_worker_exit(2, cancelled=False) or "")


def test_every_worker_module_is_kept_out_of_the_gui_by_a_contract() -> None:
    import tomllib

    from tests.conftest import REPO_ROOT

    workers = {
        f"msquant_desktop.quantize.{p.stem}"
        for p in (REPO_ROOT / "msquant_desktop" / "quantize").glob("worker_*.py")
    }
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    forbidden = {m for c in contracts if c["type"] == "forbidden" for m in c["forbidden_modules"]}
    assert workers and workers <= forbidden
