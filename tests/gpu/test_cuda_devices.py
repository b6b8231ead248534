"""GPU slots through an inherited CUDA_VISIBLE_DEVICES, with the values people really set: a scheduler's
single index, index lists, GPU UUIDs as `nvidia-smi -L` prints them, MIG instances, and the
invalid-entry rule CUDA applies ("Devices after an invalid index are ignored")."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from msquant_desktop.domain.cuda_devices import (
    device_labels,
    job_cuda_env,
    physical_gpus,
    short_label,
    usable_gpu_count,
    visible_entries,
)
from tests.jobs.helpers import child_env

# UUID shapes as `nvidia-smi -L` prints them (GPU-8-4-4-4-12 hex; MIG-<uuid> since driver R470).
GPU_A = "GPU-5c89b2d4-06a9-5b0e-2a7c-3c1e9a0f1b11"
GPU_B = "GPU-e2f1c7a0-8b34-11ee-9f3a-0242ac120002"
MIG = "MIG-2d5a3b91-6d7e-5c0f-8a41-4f0c6b1e2a90"
NVML_UUIDS = (
    GPU_B,
    "GPU-00000000-1111-2222-3333-444444444444",
    GPU_A,
    "GPU-99999999-aaaa-bbbb-cccc-dddddddddddd",
)


@pytest.mark.parametrize(
    ("inherited", "entries", "count"),
    [
        (None, None, 4),
        ("", (), 0),
        ("-1", (), 0),
        ("3", ("3",), 1),
        ("2,0", ("2", "0"), 2),
        (" 1 , 3 ", ("1", "3"), 2),
        ("0,2,x,1", ("0", "2"), 2),  # CUDA stops at the first invalid entry
        (f"{GPU_A},{GPU_B}", (GPU_A, GPU_B), 2),
        (MIG, (MIG,), 1),
        ("0,1,2,3,4,5", ("0", "1", "2", "3", "4", "5"), 4),  # never more slots than GPUs
    ],
)
def test_entries_and_slot_count(inherited: str | None, entries: tuple[str, ...] | None, count: int) -> None:
    assert visible_entries(inherited) == entries
    assert usable_gpu_count(4, inherited) == count


def test_slots_map_through_the_inherited_list() -> None:
    assert job_cuda_env((0,), "3") == {"CUDA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert job_cuda_env((1, 0), "2,0")["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert job_cuda_env((0, 1), None)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert job_cuda_env((), "3")["CUDA_VISIBLE_DEVICES"] == ""  # asked for none: sees none
    assert job_cuda_env((1,), f"{GPU_A},{GPU_B}")["CUDA_VISIBLE_DEVICES"] == GPU_B
    with pytest.raises(ValueError, match="not all in CUDA_VISIBLE_DEVICES=3"):
        job_cuda_env((1,), "3")


def test_physical_gpus_by_index_and_uuid() -> None:
    assert physical_gpus((0,), "3", NVML_UUIDS) == (3,)
    assert physical_gpus((0, 1), f"{GPU_A},{GPU_B}", NVML_UUIDS) == (2, 0)
    assert physical_gpus((0,), GPU_A[:12], NVML_UUIDS) == (2,)  # a unique prefix, as CUDA accepts
    assert physical_gpus((0,), "GPU-", NVML_UUIDS) == (None,)  # not unique
    assert physical_gpus((0,), MIG, NVML_UUIDS) == (None,)  # a MIG instance is not a whole GPU
    assert physical_gpus((0, 1), None, ()) == (0, 1)


def test_slots_are_named_as_cuda_and_nvidia_smi_name_them() -> None:
    assert device_labels((0, 1), None) == ("0", "1")
    assert device_labels((0,), "3") == ("3",)
    assert device_labels((1, 0), f"{GPU_A},{GPU_B}") == (GPU_B, GPU_A)
    assert device_labels((2,), "3") == ("slot 2",)  # never handed out; said, not guessed
    assert short_label(GPU_A) == GPU_A[:12] + "…" and short_label("3") == "3"
    assert short_label(MIG).startswith("MIG-") and len(short_label(MIG)) == 13


def test_the_jobs_table_names_a_jobs_gpu_as_nvidia_smi_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from msquant_desktop.domain.jobs import JobKind, JobState, JobSummary, JobTarget
    from msquant_desktop.ui.jobs import table_model

    now = datetime.now(UTC)
    summary = JobSummary(
        id=1, name="train", kind=JobKind.COMMAND.value, target=JobTarget.LOCAL, cluster=None,
        state=JobState.RUNNING, queue_position=None, project_id=None, project_name=None, started_at=now,
        finished_at=None, gpu_indices=(1,), gpus_requested=1, exit_code=None, signal=None, reason="",
        command="[]",
    )  # fmt: skip
    monkeypatch.setattr(table_model, "INHERITED_DEVICES", None)
    assert table_model.gpus_text(summary) == "1"
    monkeypatch.setattr(table_model, "INHERITED_DEVICES", "5,7")  # a scheduler gave the app GPUs 5 and 7
    assert table_model.gpus_text(summary) == "7"
    monkeypatch.setattr(table_model, "INHERITED_DEVICES", f"{GPU_A},{GPU_B}")
    assert table_model.gpus_text(summary) == GPU_B[:12] + "…"


def test_a_cli_job_started_under_cuda_visible_devices_3_gets_gpu_3(data_dir) -> None:  # type: ignore[no-untyped-def]
    """The report: with CUDA_VISIBLE_DEVICES=3 inherited, a 1-GPU job got "0"."""
    script = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['CUDA_DEVICE_ORDER'])"
    env = child_env(CUDA_VISIBLE_DEVICES="3", MSQUANT_GPU_COUNT="4")
    base = [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs"]
    run = subprocess.run(
        [*base, "run", "--gpus", "1", "--", sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.split()[1]
    deadline = time.monotonic() + 30
    logs = ""
    while time.monotonic() < deadline and not logs:
        logs = subprocess.run(
            [*base, "logs", job_id], env=env, capture_output=True, text=True, timeout=60
        ).stdout
        time.sleep(0.2)
    assert logs == "3 PCI_BUS_ID\n"
    # ... and is shown as GPU 3, as nvidia-smi names it (the queue's slot 0 stays internal).
    shown = subprocess.run(
        [*base, "show", job_id, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    job = json.loads(shown.stdout)["job"]
    assert (job["gpus"], job["gpu_devices"]) == ([0], ["3"])
    # Two GPUs asked under a one-GPU list: refused with the queue's words, nothing started.
    two = subprocess.run(
        [*base, "run", "--gpus", "2", "--", "true"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "1 GPU" in two.stdout + two.stderr
