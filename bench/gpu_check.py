"""The GPU device check: one command for the day a machine with an NVIDIA GPU is at hand.

On such a machine it:
  1. runs the real-NVML tests (tests/gpu/test_nvml_adapter.py, `-m gpu`) and fails if any is skipped;
  2. builds the tiny demo model (or takes --model) and quantizes it with FP8_DYNAMIC and W4A16 through
     the worker (`msquant-desktop quantize`), then evaluates each on the GPU (`msquant-desktop evaluate
     --device cuda --original <demo>`);
  3. samples the GPUs through the app's GpuService (gpu/monitor.py under services/gpu_service.py) while
     each of those jobs runs, and checks that the job's GPU memory is attributed to it: the processes
     NVML lists carry the job's marker (gpu/attribution.py reads it from /proc/PID/environ);
  4. runs the doctor (`msquant-desktop doctor --json`) after the jobs;
  5. writes `gpu_check.json` and `gpu_check.md` (a markdown figure table for BENCHMARKS.md) under --out.

With --fake (no GPU) the same steps run against the fake NVML (gpu/fake_nvml.py, scenario two_gpus):
the fake-NVML tests of the same file, W4A16 only, quantized and evaluated on the CPU, and the job's pid
put on fake GPU 0 so attribution runs through the same code.  tests/quantize/test_gpu_check.py runs it.

Run: PYTHONPATH=. .venv/bin/python bench/gpu_check.py --out /tmp/gpu-check [--fake] [--model DIR]
Exit status: 0 when every step passed, 1 otherwise (the table says which).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
FAKE_SCENARIO = "two_gpus"
FAKE_JOB_MIB = 700
"""What the fake GPU 0 says the running job holds."""
JOB_ID_BASE = 910_000
"""Marker job ids of the check's jobs (no store holds them; the doctor runs once they are gone)."""
STEP_TIMEOUT_S = 300


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "msquant_desktop", *args]


def _env(fake: bool, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    if fake:
        env["MSQUANT_FAKE_NVML"] = FAKE_SCENARIO
        env["CUDA_VISIBLE_DEVICES"] = ""  # the fake mode never touches a real GPU
    return env


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# -- 1. the NVML tests ------------------------------------------------------------------------------


def nvml_tests(out: Path, fake: bool) -> Step:
    """The real-NVML tests unskipped (GPU), or the fake-NVML tests of the same file (--fake)."""
    report = out / "nvml-tests.xml"
    marker = "not gpu" if fake else "gpu"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", marker, "-rs",
         f"--junitxml={report}", str(REPO / "tests/gpu/test_nvml_adapter.py")],
        capture_output=True, text=True, cwd=REPO, env=_env(fake), timeout=STEP_TIMEOUT_S,
    )  # fmt: skip
    seconds = time.monotonic() - started
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if report.exists():
        import xml.etree.ElementTree as ET

        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        counts = {k: int(suite.get(k, 0)) for k in counts}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    ok = proc.returncode == 0 and counts["failures"] == counts["errors"] == 0 and passed > 0
    if not fake and counts["skipped"]:
        ok = False  # on a GPU machine the real-NVML tests must run, not skip
    which = "fake-NVML tests (real ones need a GPU)" if fake else "real-NVML tests"
    note = f"{which}: {passed} passed, {counts['skipped']} skipped"
    if not ok:
        note += f"; {_last_line(proc.stdout + proc.stderr)}"
    return Step("NVML tests", ok, seconds, {"passed": passed, "skipped": counts["skipped"]}, note)


# -- 2. and 3. jobs, sampled while they run ------------------------------------------------------------


class Sampler:
    """The app's GpuService in this process (a QCoreApplication drives its signals); collects readings."""

    def __init__(self, fake: bool) -> None:
        from PySide6.QtCore import QCoreApplication

        from msquant_desktop.gpu.fake_nvml import FakeNvml
        from msquant_desktop.services.gpu_service import MIN_INTERVAL_S, GpuService

        self.app = QCoreApplication.instance() or QCoreApplication([])
        self.fake = FakeNvml(FAKE_SCENARIO) if fake else None
        # 0.25 s on a GPU (short jobs still get samples); 1 s on the fake, whose CPU the jobs need.
        self.service = GpuService(interval_s=max(MIN_INTERVAL_S, 1.0 if fake else 0.25), nvml=self.fake)
        self.readings: list[Any] = []
        self.service.sig_reading.connect(self.readings.append)
        self.service.start()

    def watch(self, proc: subprocess.Popen[str], job_id: int) -> dict[str, Any]:
        """Sample until `proc` ends; the job's GPU memory as attributed by the sampled readings."""
        if self.fake is not None:
            self.fake.attach_process(0, proc.pid, FAKE_JOB_MIB * 2**20)
        first = len(self.readings)
        while proc.poll() is None:
            self.app.processEvents()
            time.sleep(0.05)
        self.app.processEvents()
        if self.fake is not None:
            self.fake.detach_process(proc.pid)
        return attribution(self.readings[first:], job_id, proc.pid)

    def close(self) -> None:
        self.service.shutdown()


def attribution(readings: list[Any], job_id: int, pid: int) -> dict[str, Any]:
    """Peak GPU memory of processes carrying the job's marker, and the GPU processes of the job (its
    pid or a child of it) that do not carry it (the GPUs tab would show them as someone else's)."""
    ours_peak = 0
    seen_with_marker = 0
    unattributed: set[int] = set()
    foreign: set[int] = set()
    utilization: list[float] = []
    for reading in readings:
        ours = 0
        for p in reading.processes:
            if p.job is not None and p.job.job_id == job_id:
                ours += p.used_memory_bytes or 0
                seen_with_marker += 1
            elif pid in (p.pid, p.ppid):
                unattributed.add(p.pid)
            elif p.ppid is None:  # NVML lists a pid this process table does not have
                foreign.add(p.pid)
        ours_peak = max(ours_peak, ours)
        utilization.extend(g.utilization_gpu for g in reading.gpus if g.utilization_gpu is not None)
    return {
        "samples": len(readings),
        "attributed_peak_mib": round(ours_peak / 2**20, 1),
        "process_sightings": seen_with_marker,
        "unattributed_pids": sorted(unattributed),
        "pids_not_in_proc": len(foreign),
        "gpu_util_max": max(utilization) if utilization else None,
    }


def _events(stdout: str) -> list[dict[str, Any]]:
    from msquant_desktop.domain.quantize import parse_event

    return [e for e in (parse_event(line) for line in stdout.splitlines()) if e is not None]


def run_job(
    sampler: Sampler, argv: list[str], job_id: int, run_dir: Path, fake: bool
) -> tuple[int, str, str, dict[str, Any]]:
    """One worker in a child process with the job marker the engine gives its jobs, sampled while it runs."""
    from msquant_desktop.domain.markers import JOB_ID_ENV, RUN_DIR_ENV

    run_dir.mkdir(parents=True, exist_ok=True)
    env = _env(fake, **{JOB_ID_ENV: str(job_id), RUN_DIR_ENV: str(run_dir)})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env, cwd=run_dir)
        try:
            seen = sampler.watch(proc, job_id)
        finally:
            if proc.poll() is None:
                proc.kill()
        out.seek(0)
        err.seek(0)
        return proc.wait(), out.read(), err.read(), seen


def quantize_and_evaluate(
    sampler: Sampler, model: Path, out: Path, scheme: str, index: int, fake: bool
) -> list[Step]:
    steps = []
    target = out / f"quantized-{scheme}"
    job_id = JOB_ID_BASE + 2 * index
    started = time.monotonic()
    code, stdout, stderr, seen = run_job(
        sampler, _cli("quantize", "--model", str(model), "--scheme", scheme, "--out", str(target)),
        job_id, out / f"run-quantize-{scheme}", fake,
    )  # fmt: skip
    result = next((e for e in reversed(_events(stdout)) if e.get("type") == "result"), {})
    config = target / "config.json"
    method = (
        json.loads(config.read_text()).get("quantization_config", {}).get("quant_method")
        if config.exists()
        else None
    )
    ok = code == 0 and method == "compressed-tensors"
    figures = {
        "duration_s": result.get("duration_s"),
        "size_after_mib": round(result["size_after"] / 2**20, 1) if result.get("size_after") else None,
        **seen,
    }
    note = f"{method or 'no checkpoint'}"
    if not ok:
        note += f"; exit {code}: {_last_line(stderr)}"
    steps.append(
        _attributed(
            Step(f"quantize {scheme}", ok, time.monotonic() - started, figures, note), fake, must=False
        )
    )
    if not ok:
        return steps
    started = time.monotonic()
    device = "cpu" if fake else "cuda"
    argv = _cli("evaluate", "--model", str(target), "--original", str(model), "--device", device, "--json")
    if fake:
        # Few short windows: the CPU figures are in the scheme table already; this checks the path.
        argv += ["--no-speed", "--seq-len", "128", "--max-windows", "2"]
    code, stdout, stderr, seen = run_job(sampler, argv, job_id + 1, out / f"run-evaluate-{scheme}", fake)
    try:
        evaluated = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    except json.JSONDecodeError:
        evaluated = {}
    ok = code == 0 and evaluated.get("device") == device and evaluated.get("perplexity") is not None
    figures = {
        k: evaluated.get(k)
        for k in ("perplexity", "original_perplexity", "top1_agreement", "kl_divergence",
                  "decode_tokens_per_s", "decode_tokens_per_s_batch8", "peak_memory_mib", "duration_s")
    }  # fmt: skip
    figures.update(seen)
    note = f"on {evaluated.get('device', device)}" if ok else f"exit {code}: {_last_line(stderr)}"
    steps.append(
        _attributed(
            Step(f"evaluate {scheme}", ok, time.monotonic() - started, figures, note), fake, must=True
        )
    )
    return steps


def _attributed(step: Step, fake: bool, must: bool) -> Step:
    """The attribution verdict of a job step.  Evaluate on cuda always holds GPU memory, so there it
    must be attributed; a quantization may run on the CPU (then nothing is on the GPU to attribute),
    but whatever of it is on a GPU must carry its marker.  In fake mode the fake reports it on GPU 0."""
    seen = step.figures
    if seen["unattributed_pids"]:
        step.ok = False
        step.note += f"; GPU memory of pids {seen['unattributed_pids']} not attributed to the job"
    elif (must or fake) and step.ok and not seen["attributed_peak_mib"]:
        step.ok = False
        step.note += f"; no GPU memory attributed to the job in {seen['samples']} samples"
        if seen["pids_not_in_proc"]:  # e.g. a container: NVML reports the host's pids
            step.note += f" (NVML listed {seen['pids_not_in_proc']} pid(s) not in this pid namespace)"
    elif seen["attributed_peak_mib"]:
        step.note += f"; {seen['attributed_peak_mib']} MiB attributed to the job"
    return step


# -- 4. the doctor ------------------------------------------------------------------------------------


def doctor(fake: bool) -> Step:
    started = time.monotonic()
    proc = subprocess.run(
        _cli("doctor", "--json"), capture_output=True, text=True, env=_env(fake), timeout=120
    )
    seconds = time.monotonic() - started
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return Step("doctor", False, seconds, {}, f"exit {proc.returncode}: {_last_line(proc.stderr)}")
    kinds = sorted({f["kind"] for f in report.get("findings", [])})
    ok = proc.returncode in (0, 5) and not report["gpu_status"].startswith("No NVIDIA GPU")
    note = f"{report['gpu_status']}; findings: {', '.join(kinds) or 'none'}"
    return Step("doctor", ok, seconds, {"findings": len(report.get("findings", [])), "kinds": kinds}, note)


# -- the report ---------------------------------------------------------------------------------------


def machine(fake: bool) -> str:
    if fake:
        return f"fake NVML ({FAKE_SCENARIO}), CPU only"
    try:
        from msquant_desktop.gpu.nvml import NvmlAdapter

        adapter = NvmlAdapter()
        if adapter.start() is None:
            gpus = adapter.sample()
            names = ", ".join(sorted({g.name for g in gpus}))
            total = gpus[0].memory_total_bytes / 2**30 if gpus and gpus[0].memory_total_bytes else 0
            adapter.close()
            return f"{len(gpus)} x {names} ({total:.0f} GiB), driver {adapter.driver_version}"
        return adapter.unavailable or "no GPU"
    except Exception as exc:  # the report must still be written
        return f"unknown ({exc})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(steps: list[Step], header: str) -> str:
    lines = [header, "", "| step | result | time | figures | note |", "|---|---|---|---|---|"]
    for s in steps:
        shown = {k: v for k, v in s.figures.items() if v not in (None, [], "") and k != "unattributed_pids"}
        figures = ", ".join(f"{k} {_cell(v)}" for k, v in shown.items())
        lines.append(
            f"| {s.name} | {'ok' if s.ok else 'FAILED'} | {s.seconds:.1f} s | {figures} | {s.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR", help="where the figures and models go")
    parser.add_argument("--fake", action="store_true", help="no GPU: the fake NVML, W4A16 on the CPU")
    parser.add_argument("--model", metavar="DIR", help="the demo model to use (default: build the tiny one)")
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    steps = [nvml_tests(out, args.fake)]

    model = Path(args.model).resolve() if args.model else out / "demo"
    if not args.model and not (model / "config.json").exists():
        started = time.monotonic()
        proc = subprocess.run(_cli("demo-model", "--size", "tiny", "--out", str(model)),
                              capture_output=True, text=True, env=_env(args.fake), timeout=STEP_TIMEOUT_S)  # fmt: skip
        steps.append(Step("demo model", proc.returncode == 0, time.monotonic() - started, {},
                          "tiny" if proc.returncode == 0 else _last_line(proc.stderr)))  # fmt: skip
    schemes = ["W4A16"] if args.fake else ["FP8_DYNAMIC", "W4A16"]
    if (model / "config.json").exists():
        sampler = Sampler(args.fake)
        try:
            for i, scheme in enumerate(schemes):
                steps.extend(quantize_and_evaluate(sampler, model, out, scheme, i, args.fake))
        finally:
            sampler.close()
    steps.append(doctor(args.fake))

    header = f"GPU check on {machine(args.fake)}: {time.monotonic() - began:.0f} s in all"
    table = markdown(steps, header)
    (out / "gpu_check.md").write_text(table, encoding="utf-8")
    data = {"machine": machine(args.fake), "fake": args.fake, "seconds": round(time.monotonic() - began, 1),
            "steps": [s.__dict__ for s in steps]}  # fmt: skip
    (out / "gpu_check.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    print(table)
    print(f"figures written to {out / 'gpu_check.md'} and {out / 'gpu_check.json'}")
    return 0 if all(s.ok for s in steps) else 1


if __name__ == "__main__":
    raise SystemExit(main())
