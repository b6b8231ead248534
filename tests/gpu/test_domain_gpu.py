"""Throttle words and the pure orphan policy."""

from __future__ import annotations

from msquant_desktop.domain.gpu import (
    GpuProcess,
    GpuSnapshot,
    MarkedProcessFacts,
    OrphanReason,
    describe_throttle,
    gpu_holder_reparented,
    orphan_reason,
    throttle_problems,
    throttle_words,
    unowned_memory_mib,
)
from msquant_desktop.domain.jobs import JobState


def test_throttle_reasons_in_words() -> None:
    assert throttle_words(None) == () and throttle_words(0) == ()
    assert throttle_words(0x1) == ("idle",)
    assert throttle_words(0x4 | 0x40) == ("power cap", "thermal (hardware)")
    assert throttle_words(0x1000) == ("other (0x1000)",)
    assert throttle_problems(0x1 | 0x2 | 0x8) == ("hardware slowdown",)
    assert describe_throttle(None) == "—" and describe_throttle(0) == "none"
    assert describe_throttle(0x20) == "thermal (software)"


def _facts(**kw) -> MarkedProcessFacts:  # type: ignore[no-untyped-def]
    base = dict(pid=10, job_id=3, job_state=JobState.RUNNING, store_exists=True, supervisor_alive=True)
    return MarkedProcessFacts(**{**base, **kw})


def test_orphan_policy() -> None:
    assert orphan_reason(_facts()) is None
    assert orphan_reason(_facts(supervisor_alive=None)) is None  # starting: no pid recorded yet
    assert orphan_reason(_facts(job_state=JobState.CANCELLING)) is None
    assert orphan_reason(_facts(job_state=JobState.COMPLETED)) == (
        OrphanReason.JOB_NOT_ACTIVE,
        "job 3 is completed",
    )
    assert orphan_reason(_facts(job_state=JobState.QUEUED))[0] is OrphanReason.JOB_NOT_ACTIVE  # type: ignore[index]
    assert orphan_reason(_facts(supervisor_alive=False)) == (
        OrphanReason.SUPERVISOR_GONE,
        "the supervisor of job 3 is gone",
    )
    assert orphan_reason(_facts(job_state=None))[0] is OrphanReason.JOB_UNKNOWN  # type: ignore[index]
    assert orphan_reason(_facts(store_exists=False))[1] == "the store of job 3 no longer exists"  # type: ignore[index]
    assert orphan_reason(_facts(job_id=None))[0] is OrphanReason.JOB_UNKNOWN  # type: ignore[index]


def test_reparented_and_unowned_memory() -> None:
    assert gpu_holder_reparented(1) and not gpu_holder_reparented(1234)
    assert gpu_holder_reparented(77, frozenset({77}))
    busy = GpuSnapshot(0, "g", "u", memory_used_bytes=8 * 2**30, processes=(GpuProcess(5, 0, 2**30),))
    assert unowned_memory_mib(busy) is None
    leaked = GpuSnapshot(0, "g", "u", memory_used_bytes=6 * 2**30)
    assert unowned_memory_mib(leaked) == 6144.0
    assert unowned_memory_mib(GpuSnapshot(0, "g", "u", memory_used_bytes=400 * 2**20)) is None  # driver only
    assert unowned_memory_mib(GpuSnapshot(0, "g", "u")) is None
