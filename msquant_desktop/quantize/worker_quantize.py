"""The quantization worker: one llmcompressor `oneshot` in this process, reported as JSON events.

Run by the Jobs engine as `msquant-desktop quantize ...` (or `python -m
msquant_desktop.quantize.worker_quantize ...` with another Python).  Ordinary log lines keep
streaming; `@@MSQUANT-EVENT@@ {json}` lines on stdout carry stage, progress, warning, error, result.

The output is written to `<out>.partial` and renamed at the very end, so a cancelled or crashed run
never leaves a folder that looks like a result.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from msquant_desktop.domain.quantize import SCHEMES_BY_ID, QuantizeRequest, format_event
from msquant_desktop.quantize.args import add_quantize_arguments, request_from_args
from msquant_desktop.quantize.calibration import load_calibration_texts
from msquant_desktop.quantize.checks import check_request
from msquant_desktop.quantize.heldout import DEMO_HELDOUT_FILE
from msquant_desktop.quantize.model_folder import folder_size, weights_size
from msquant_desktop.quantize.progress import ProgressTracker

EXIT_BAD_INPUT = 2
_emit_lock = threading.Lock()


def emit(event: dict[str, Any]) -> None:
    with _emit_lock:
        sys.stdout.write(format_event(event) + "\n")
        sys.stdout.flush()


def peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class _StderrTee:
    """Passes stderr through unchanged and shows every chunk to the progress tracker (tqdm bars)."""

    def __init__(self, stream: Any, tracker: ProgressTracker) -> None:
        self._stream = stream
        self._tracker = tracker

    def write(self, text: str) -> int:
        try:
            self._tracker.feed_stderr(text)
        except Exception:  # progress is best effort; never break the run over it
            pass
        return int(self._stream.write(text))

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def build_recipe(request: QuantizeRequest) -> Any:
    """The llmcompressor recipe for a scheme id (a modifier, a list of them, or a YAML path)."""
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier

    ignore = list(request.ignore)
    scheme = request.scheme
    if scheme in ("FP8_DYNAMIC", "W8A16", "W4A16"):
        return QuantizationModifier(targets="Linear", scheme=scheme, ignore=ignore)
    if scheme == "GPTQ_W4A16":
        return GPTQModifier(targets="Linear", scheme="W4A16", ignore=ignore)
    if scheme == "SMOOTHQUANT_GPTQ_W8A8":
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        return [
            SmoothQuantModifier(smoothing_strength=0.8),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=ignore),
        ]
    if scheme == "AWQ_W4A16":
        from llmcompressor.modifiers.transform import AWQModifier

        _allow_awq_without_accelerator()
        # Since llmcompressor 0.14 AWQ only scales channels; a quantization modifier after it
        # quantizes (AWQModifier refuses targets/scheme/ignore).
        return [
            AWQModifier(),
            QuantizationModifier(targets=["Linear"], scheme="W4A16_ASYM", ignore=ignore),
        ]
    if scheme == "RECIPE" and request.recipe:
        return str(Path(request.recipe).expanduser())
    raise ValueError(f"unknown scheme {scheme!r}")


def _allow_awq_without_accelerator() -> None:
    # WORKAROUND: llmcompressor 0.14's AWQ pins cached activations (`IntermediatesCache.pin_memory`)
    # for faster host-to-device copies; with a CPU-only torch that raises "Cannot access accelerator
    # device when none is available".  Pinning is only an optimisation, so skip it when no
    # accelerator exists (facts/llmcompressor-cpu.md).
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        return

    def _no_pin(self: Any, batch_index: int, input_names: list[str] | None = None) -> None:
        return None

    IntermediatesCache.pin_memory = _no_pin  # type: ignore[method-assign]


def _hint_for(exc: BaseException, request: QuantizeRequest) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "not enough memory: use fewer samples, a shorter sequence length, or a bigger machine"
    if "divisible" in text:
        return "add the layers named above to the ignore list, or choose a scheme without groups (W8A16, FP8)"
    if "NoneType' object is not iterable" in text and not request.dataset:
        return "this recipe calibrates on data: give a calibration dataset"
    if "Cannot access accelerator" in text:
        return "this recipe needs an accelerator here; try GPTQ instead of AWQ on a CPU-only machine"
    return "see the log above for the full traceback"


def _install_cancel_cleanup(partial: Path) -> None:
    """On SIGTERM: remove the half-written output, then die of SIGTERM as the engine expects."""

    def _on_term(signum: int, _frame: Any) -> None:
        shutil.rmtree(partial, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, _on_term)


def _keep_heldout_split(model_dir: Path, partial: Path) -> None:
    """A demo model's held-out split goes with its quantization, so `evaluate --model OUT` finds the
    same text by default (the calibration samples stay behind: they are not held out)."""
    heldout = model_dir / DEMO_HELDOUT_FILE
    if heldout.is_file() and partial.is_dir():
        shutil.copy2(heldout, partial / DEMO_HELDOUT_FILE)


def run(request: QuantizeRequest) -> int:
    started = time.monotonic()
    emit({"type": "stage", "stage": "Checking inputs"})
    emit({"type": "progress", "stage": "Checking inputs", "fraction": 0.0, "eta_s": None})
    report = check_request(request)
    if not report.ok:
        for problem in report.problems:
            emit(
                {
                    "type": "error",
                    "message": problem.message,
                    "hint": problem.hint,
                    "layers": list(problem.layers),
                }
            )
            print(f"quantize: {problem.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    assert report.model is not None
    model_dir = report.model.path.resolve()
    out = Path(request.out).expanduser().resolve()
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a run that was killed while saving
    _install_cancel_cleanup(partial)
    scheme = SCHEMES_BY_ID[request.scheme]

    emit({"type": "stage", "stage": "Loading libraries"})
    # The calibration set is tokenized through datasets' worker threads, and the tokenizers
    # library then turns its own parallelism off with a warning in the job's log (shown as a
    # warning event); saying so first keeps that noise out.  A user's own setting wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tracker = ProgressTracker(emit)
    sys.stderr = _StderrTee(sys.stderr, tracker)
    from llmcompressor import oneshot
    from loguru import logger

    warned: set[str] = set()

    def _sink(message: Any) -> None:
        record = message.record
        tracker.feed_log(record["message"])
        if record["level"].name in ("WARNING", "ERROR", "CRITICAL") and record["message"] not in warned:
            warned.add(record["message"])  # llmcompressor repeats some warnings for every layer
            emit({"type": "warning", "message": record["message"]})

    logger.add(_sink, level="INFO", format="{message}")

    dataset = None
    if request.dataset:
        emit({"type": "stage", "stage": "Loading calibration data"})
        from datasets import Dataset

        dataset = Dataset.from_dict({"text": load_calibration_texts(request.dataset, request.samples)})
    elif scheme.needs_data:  # check_request refused it already; kept for direct callers
        raise ValueError(f"{scheme.title} needs a calibration dataset")

    emit({"type": "stage", "stage": "Quantizing"})
    kwargs: dict[str, Any] = {}
    if dataset is not None:
        kwargs = {
            "dataset": dataset,
            "num_calibration_samples": len(dataset),
            "max_seq_length": request.seq_len,
        }
    try:
        oneshot(model=str(model_dir), recipe=build_recipe(request), output_dir=str(partial), **kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            shutil.rmtree(partial, ignore_errors=True)
            raise
        traceback.print_exc()
        shutil.rmtree(partial, ignore_errors=True)
        emit({"type": "error", "message": f"{type(exc).__name__}: {exc}", "hint": _hint_for(exc, request)})
        return 1
    emit({"type": "stage", "stage": "Finishing"})
    _keep_heldout_split(model_dir, partial)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the rename below must not be cut in half
    if out.exists():
        out.rmdir()  # check_request made sure it is empty
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(out)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    emit({"type": "progress", "stage": "Done", "fraction": 1.0, "eta_s": 0})
    emit(
        {
            "type": "result",
            "kind": "quantize",
            "output": str(out),
            "model": str(model_dir),
            "scheme": request.scheme,
            "size_before": weights_size(model_dir),
            "size_after": weights_size(out),
            "folder_size_after": folder_size(out),
            "duration_s": round(time.monotonic() - started, 2),
            "peak_rss_bytes": peak_rss_bytes(),
            "samples": len(dataset) if dataset is not None else 0,
            "seq_len": request.seq_len if dataset is not None else 0,
        }
    )
    print(f"quantized model written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="msquant-quantize", description="Quantize a model with llmcompressor"
    )
    add_quantize_arguments(parser)
    return run(request_from_args(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
