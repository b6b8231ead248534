"""Which queued local job starts next.  A pure policy function; standard library only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from msquant_desktop.domain.jobs import JobState

AFTER_META_KEY = "after"
"""Where a JobSpec keeps the ids of the jobs it waits for (`jobs run --after ID`): spec.meta["after"]."""


@dataclass(frozen=True)
class QueuedJob:
    """What the policy needs to know about one queued job."""

    job_id: int
    gpus: int
    after: tuple[int, ...] = ()
    """Jobs that must have COMPLETED before this one may start."""


def after_ids(meta: Mapping[str, object]) -> tuple[int, ...]:
    """The dependency ids a spec's meta names (anything that is not a whole number is ignored)."""
    raw = meta.get(AFTER_META_KEY) or ()
    if not isinstance(raw, list | tuple):
        return ()
    return tuple(int(i) for i in raw if isinstance(i, int) and not isinstance(i, bool))


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
    dependencies: Mapping[int, JobState] | None = None,
) -> Decision:
    """Decide what happens to the head of the queue.

    Preconditions: `queued` is in queue order; `running_count` counts every active local job (from
    every process sharing the store); `busy_gpus` are the indices those jobs hold; `dependencies`
    has the state of every job some queued job waits for (a missing id: that job does not exist).

    Dependencies first: a job whose dependency ended other than COMPLETED (or does not exist) is
    rejected, and a job whose dependencies have not all completed yet is passed over without holding
    up the jobs behind it (as pueue's `--after`).  Among the jobs that are ready the order is strict:
    only the first is considered, so a job that waits for GPUs is never starved by smaller ones
    behind it.  A head job that can never fit is rejected so the queue moves.
    Returns None when nothing can start now.
    """
    states = dependencies or {}
    ready = []
    for job in queued:
        problem = dependency_problem(job.after, states)
        if problem is not None:
            return RejectJob(job.job_id, problem)
        if all(states.get(d) is JobState.COMPLETED for d in job.after):
            ready.append(job)
    if not ready:
        return None
    head = ready[0]
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


def dependency_problem(after: Sequence[int], states: Mapping[int, JobState]) -> str | None:
    """Why a job waiting for `after` can never start, or None (it may start once they completed)."""
    for dep in after:
        state = states.get(dep)
        if state is None:
            return f"it waits for job {dep}, which does not exist"
        if state.is_final and state is not JobState.COMPLETED:
            return f"job {dep}, which it waits for, ended {state.value} (it runs only after a COMPLETED job)"
    return None
