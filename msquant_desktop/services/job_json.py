"""The one JSON shape of a job, and the envelope of every `--json` output: the scripting contract.

`jobs list`, `jobs show`, `jobs wait`, `slurm status` all print jobs through `job_json`, so one job
looks the same whichever command printed it (README.md, "JSON output", documents the fields).
Every `--json` output is one object with `"schema": SCHEMA_VERSION` at its top (domain.json_contract).
"""

from __future__ import annotations

import os
from typing import Any

from msquant_desktop.domain.cuda_devices import CUDA_VISIBLE_DEVICES, device_labels
from msquant_desktop.domain.exit_status import exit_status
from msquant_desktop.domain.jobs import JobRecord, JobTarget
from msquant_desktop.domain.json_contract import SCHEMA_VERSION, envelope
from msquant_desktop.domain.queue import after_ids

__all__ = ["SCHEMA_VERSION", "envelope", "job_json"]


def job_json(r: JobRecord) -> dict[str, Any]:
    """One job, local or SLURM, in the shape every command prints."""
    slurm = r.spec.target is JobTarget.SLURM
    tasks: dict[str, str] = {}
    if slurm:  # imported only for SLURM jobs: cluster_jobs brings paramiko (~0.5 s)
        from msquant_desktop.services.cluster_jobs import task_states

        tasks = dict(task_states(r))
    return {
        "id": r.id,
        "name": r.spec.name,
        "kind": r.spec.kind.value,
        "target": r.spec.target.value,
        "cluster": r.spec.cluster,
        "state": r.state.value,
        "final": r.state.is_final,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "exit_status": exit_status(r.state, r.exit_code, r.signal),
        "outcome": r.outcome.describe() if r.outcome else None,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(),
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "queue_position": r.queue_position,
        "after": list(after_ids(r.spec.meta)),
        "gpus_requested": r.spec.gpus,
        "gpus": list(r.gpu_indices),
        "gpu_devices": list(device_labels(r.gpu_indices, os.environ.get(CUDA_VISIBLE_DEVICES))),
        "run_dir": r.run_dir,
        "slurm_job_id": r.slurm_job_id,
        "submit_step": r.result.get("submit_step") if slurm else None,
        "tasks": tasks,
        "wandb_urls": list(r.result.get("wandb_urls", [])),
    }
