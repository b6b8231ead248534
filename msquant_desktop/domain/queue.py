"""Which queued local job starts next.  A pure policy function; standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class QueuedJob:
    """What the policy needs to know about one queued job."""

    job_id: int
    gpus: int


@dataclass(frozen=True)
class StartJob:
    """Start `job_id` now with these GPU indices (empty when it asked for none)."""

    job_id: int
    gpu_indices: tuple[int, ...]


@dataclass(frozen=True)
class RejectJob:
    """`job_id` can never run on this machine (e.g. asks for more GPUs than exist)."""

    job_id: int
    reason: str


Decision = StartJob | RejectJob | None


def next_runnable(
    queued: Sequence[QueuedJob],
    running_count: int,
    max_running: int,
    gpu_count: int,
    busy_gpus: Iterable[int],
) -> Decision:
    """Decide what happens to the head of the queue.

    Preconditions: `queued` is in queue order; `running_count` counts every active local job (from
    every process sharing the store); `busy_gpus` are the indices those jobs hold.

    Strict order: only the first queued job is considered, so a job that waits for GPUs is never
    starved by smaller ones behind it.  A head job that can never fit is rejected so the queue moves.
    Returns None when nothing can start now.
    """
    if not queued:
        return None
    head = queued[0]
    if head.gpus > gpu_count:
        have = "no GPU" if gpu_count == 0 else f"{gpu_count} GPU{'s' if gpu_count != 1 else ''}"
        return RejectJob(head.job_id, f"asks for {head.gpus} GPU(s) but this machine has {have}")
    if running_count >= max_running:
        return None
    busy = set(busy_gpus)
    free = [i for i in range(gpu_count) if i not in busy]
    if head.gpus > len(free):
        return None
    return StartJob(head.job_id, tuple(free[: head.gpus]))
