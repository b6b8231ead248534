"""SLURM submissions and states.  Standard library only.

The Clusters area (slurm/ adapter, ClusterService) owns the behaviour; this module fixes the shape of
a submission so Projects (launch on a cluster) and Clusters agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlurmSubmission:
    """Everything needed to run a project's command at a pinned commit on a cluster.

    `command` is an argv (never a shell string); `overrides` are Hydra `key=value` strings, each
    passed as one quoted argument after the command.
    """

    cluster: str
    job_name: str
    repo_url: str
    commit: str
    command: tuple[str, ...]
    overrides: tuple[str, ...] = ()
    partition: str | None = None
    gpu_type: str | None = None
    gpus: int = 0
    cpus: int = 1
    memory: str | None = None  # e.g. "16G"
    time_limit: str | None = None  # e.g. "01:00:00"
    project_id: int | None = None
    extra_env: tuple[tuple[str, str], ...] = field(default=())
