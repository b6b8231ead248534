"""Jobs in the store: create, move through states (each step recorded), query, reorder, delete."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from msquant_desktop.domain.jobs import (
    ACTIVE_STATES,
    UNFINISHED_STATES,
    JobRecord,
    JobSpec,
    JobState,
    JobSummary,
    JobTarget,
    StateTransition,
    can_transition,
)
from msquant_desktop.domain.queue import Decision, QueuedJob, RejectJob, StartJob, after_ids, next_runnable
from msquant_desktop.store.db import StoreError, transaction

# Columns a caller may set together with a state change.
_UPDATABLE = frozenset(
    {
        "started_at",
        "finished_at",
        "run_dir",
        "pid",
        "pid_start_time",
        "gpu_indices",
        "exit_code",
        "signal",
        "reason",
        "slurm_job_id",
        "result",
        "queue_position",
        "claimer_pid",
        "claimer_start_time",
    }
)


class IllegalTransition(StoreError):
    """A state change that a job's life does not allow (e.g. COMPLETED -> RUNNING)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _encode(column: str, value: Any) -> Any:
    if column in ("started_at", "finished_at"):
        return _ts(value)
    if column == "gpu_indices":
        return ",".join(str(i) for i in value)
    if column == "result":
        return json.dumps(value)
    return value


def row_to_record(row: sqlite3.Row) -> JobRecord:
    gpu_text = row["gpu_indices"]
    # A store opened read-only (the doctor looking at another store) may be of an older schema.
    claimed = "claimer_pid" in row.keys()
    return JobRecord(
        id=row["id"],
        spec=JobSpec.from_dict(json.loads(row["spec"])),
        state=JobState(row["state"]),
        created_at=_parse_ts(row["created_at"]) or utcnow(),
        queue_position=row["queue_position"],
        started_at=_parse_ts(row["started_at"]),
        finished_at=_parse_ts(row["finished_at"]),
        run_dir=row["run_dir"],
        pid=row["pid"],
        pid_start_time=row["pid_start_time"],
        gpu_indices=tuple(int(i) for i in gpu_text.split(",")) if gpu_text else (),
        exit_code=row["exit_code"],
        signal=row["signal"],
        reason=row["reason"],
        slurm_job_id=row["slurm_job_id"],
        result=json.loads(row["result"]),
        claimer_pid=row["claimer_pid"] if claimed else None,
        claimer_start_time=row["claimer_start_time"] if claimed else None,
    )


def _in_states(states: Iterable[JobState]) -> str:
    """`('A', 'B')` for SQL, from the domain's own state sets (values are enum literals, not input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"


# The spec's JSON is only looked into where a row needs it (json_extract costs per row): the GPUs a
# queued job asks for, and a project's name.  The command is fetched with the row only for active
# jobs; search over past jobs uses the name.  A project job's sweep (if any) groups its rows.
_SUMMARY_SQL = (
    "SELECT id, name, kind, target, cluster, state, queue_position, project_id,"
    " CASE WHEN project_id IS NULL THEN NULL ELSE json_extract(spec, '$.meta.project_name') END,"
    " started_at, finished_at, gpu_indices,"
    " CASE WHEN state = 'QUEUED' THEN COALESCE(json_extract(spec, '$.gpus'), 0) ELSE 0 END,"
    " exit_code, signal, reason,"
    f" CASE WHEN state IN {_in_states(UNFINISHED_STATES)} THEN json_extract(spec, '$.argv')"
    " ELSE '' END,"
    " CASE WHEN project_id IS NULL THEN NULL ELSE json_extract(spec, '$.meta.sweep.id') END,"
    " slurm_job_id,"
    " CASE WHEN target = 'slurm' AND project_id IS NOT NULL"
    " THEN json_array_length(spec, '$.meta.submission.task_overrides') END,"
    " CASE WHEN target = 'slurm' AND project_id IS NOT NULL THEN json_extract(result, '$.tasks') END"
    " FROM jobs"
)
_STATES = {s.value: s for s in JobState}
_TARGETS = {t.value: t for t in JobTarget}


def _row_to_summary(r: Sequence[Any]) -> JobSummary:
    gpu_text = r[11]
    return JobSummary(
        id=r[0],
        name=r[1],
        kind=r[2],
        target=_TARGETS[r[3]],
        cluster=r[4],
        state=_STATES[r[5]],
        queue_position=r[6],
        project_id=r[7],
        project_name=r[8],
        started_at=datetime.fromisoformat(r[9]) if r[9] else None,
        finished_at=datetime.fromisoformat(r[10]) if r[10] else None,
        gpu_indices=tuple(int(i) for i in gpu_text.split(",")) if gpu_text else (),
        gpus_requested=int(r[12] or 0),
        exit_code=r[13],
        signal=r[14],
        reason=r[15],
        command=r[16] or "",
        sweep_id=r[17],
        slurm_job_id=r[18],
        array_tasks=_array_tasks(r[18], r[19], r[20]),
    )


def _array_tasks(
    slurm_id: str | None, count: int | None, tasks_json: str | None
) -> tuple[tuple[str, str], ...]:
    """The tasks of a sweep's job array (task i is member i, indices 0..count-1), with the states the
    Clusters area stored under `result["tasks"]`; PENDING until it stored one."""
    if not count:
        return ()
    try:
        stored = json.loads(tasks_json) if tasks_json else {}
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    base = slurm_id or "?"
    return tuple(
        (f"{base}_{i}", str((stored.get(str(i)) or {}).get("state", "PENDING"))) for i in range(count)
    )


class JobRepository:
    """All job reads and writes go through here (one connection, owned by its caller's thread)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def create(self, spec: JobSpec, state: JobState = JobState.QUEUED, note: str = "") -> JobRecord:
        """Store a new job; a QUEUED job goes to the end of the queue."""
        now = utcnow()
        with transaction(self._conn):
            position = None
            if state is JobState.QUEUED and spec.target is JobTarget.LOCAL:
                row = self._conn.execute(
                    "SELECT COALESCE(MAX(queue_position), 0) + 1 FROM jobs WHERE state = ? AND target = ?",
                    (JobState.QUEUED.value, JobTarget.LOCAL.value),
                ).fetchone()
                position = int(row[0])
            cur = self._conn.execute(
                "INSERT INTO jobs (name, kind, target, spec, state, queue_position, project_id, cluster,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    spec.kind.value,
                    spec.target.value,
                    json.dumps(spec.to_dict()),
                    state.value,
                    position,
                    spec.project_id,
                    spec.cluster,
                    _ts(now),
                ),
            )
            job_id = int(cur.lastrowid or 0)
            self._record_transition(job_id, None, state, now, note)
        return self.get(job_id)

    def create_many(
        self, specs: Sequence[JobSpec], state: JobState = JobState.QUEUED, note: str = ""
    ) -> list[JobRecord]:
        """Store several jobs in one transaction, in order (a sweep's members queue back to back):
        all of them, or — when any cannot be stored — none."""
        with transaction(self._conn):
            return [self.create(spec, state, note) for spec in specs]

    def get(self, job_id: int) -> JobRecord:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job with id {job_id}")
        return row_to_record(row)

    def find(self, job_id: int) -> JobRecord | None:
        try:
            return self.get(job_id)
        except KeyError:
            return None

    def list_jobs(
        self,
        states: Iterable[JobState] | None = None,
        project_id: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
        target: JobTarget | None = None,
    ) -> list[JobRecord]:
        """Jobs matching every filter given, newest first unless `newest_first` is False."""
        sql = "SELECT * FROM jobs"
        where: list[str] = []
        params: list[Any] = []
        if target is not None:
            where.append("target = ?")
            params.append(target.value)
        if states is not None:
            values = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(values))})")
            params.extend(values)
        if project_id is not None:
            where.append("project_id = ?")
            params.append(project_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [row_to_record(r) for r in self._conn.execute(sql, params)]

    def summaries(self) -> list[JobSummary]:
        """Every job as a table row, newest first (fast: the spec is not parsed)."""
        return [_row_to_summary(r) for r in self._conn.execute(_SUMMARY_SQL + " ORDER BY id DESC")]

    def summary(self, job_id: int) -> JobSummary:
        row = self._conn.execute(_SUMMARY_SQL + " WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job with id {job_id}")
        return _row_to_summary(row)

    def queued(self) -> list[JobRecord]:
        """Queued local jobs in the order they will start (SLURM's queue is the cluster's own)."""
        rows = self._conn.execute(
            "SELECT * FROM jobs WHERE state = ? AND target = ? ORDER BY queue_position, id",
            (JobState.QUEUED.value, JobTarget.LOCAL.value),
        )
        return [row_to_record(r) for r in rows]

    def active(self, target: JobTarget | None = None) -> list[JobRecord]:
        """Jobs that own (or may own) processes: the ones to re-adopt after a restart."""
        return self.list_jobs(states=ACTIVE_STATES, newest_first=False, target=target)

    def transition(self, job_id: int, new: JobState, note: str = "", **fields: Any) -> JobRecord:
        """Move a job to `new`, updating `fields` in the same transaction.  Refuses illegal steps."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot set job fields {sorted(unknown)}")
        now = utcnow()
        with transaction(self._conn):
            row = self._conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job with id {job_id}")
            old = JobState(row["state"])
            if old is not new and not can_transition(old, new):
                raise IllegalTransition(f"job {job_id}: {old.value} -> {new.value} is not allowed")
            if new is not JobState.QUEUED:
                fields.setdefault("queue_position", None)
            if new is JobState.RUNNING and old is not JobState.RUNNING:
                fields.setdefault("started_at", now)
            if new.is_final:
                fields.setdefault("finished_at", now)
            self._update(job_id, {"state": new.value, **{k: _encode(k, v) for k, v in fields.items()}})
            if old is not new:
                self._record_transition(job_id, old, new, now, note)
        return self.get(job_id)

    def update(self, job_id: int, **fields: Any) -> JobRecord:
        """Change fields without a state change (e.g. a result or a SLURM job id)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot set job fields {sorted(unknown)}")
        with transaction(self._conn):
            self._update(job_id, {k: _encode(k, v) for k, v in fields.items()})
        return self.get(job_id)

    def reorder_queue(self, ordered_ids: Sequence[int]) -> None:
        """Give queued jobs the order of `ordered_ids`; queued jobs not named keep their order after."""
        with transaction(self._conn):
            queued = [r.id for r in self.queued()]
            rest = [i for i in queued if i not in set(ordered_ids)]
            for position, job_id in enumerate([i for i in ordered_ids if i in set(queued)] + rest, 1):
                self._conn.execute("UPDATE jobs SET queue_position = ? WHERE id = ?", (position, job_id))

    def claim_next(
        self,
        max_running: int,
        gpu_count: int,
        claimer: tuple[int, float | None] | None = None,
        only_job: int | None = None,
    ) -> tuple[Decision, JobRecord | None]:
        """Decide (domain.queue.next_runnable) and take the next local job in one write transaction.

        The transaction serializes every process sharing the store (the app and `jobs run`), so the
        concurrency limit and GPU slots hold across all of them.  A started job is moved to STARTING
        with its GPU indices and the claiming process's (pid, start time); a job that can never run is
        moved to FAILED_TO_START with the reason (also one whose `--after` dependency did not complete).
        With `only_job`, nothing is taken unless the decision is about that job (inside the same
        transaction).
        """
        with transaction(self._conn):
            active = self.active(target=JobTarget.LOCAL)
            queued = [QueuedJob(r.id, r.spec.gpus, after_ids(r.spec.meta)) for r in self.queued()]
            busy = [i for r in active for i in r.gpu_indices]
            dependencies = self._states_of({d for q in queued for d in q.after})
            decision = next_runnable(queued, len(active), max_running, gpu_count, busy, dependencies)
            if only_job is not None and (decision is None or decision.job_id != only_job):
                return None, None
            if isinstance(decision, StartJob):
                pid, start = claimer if claimer is not None else (None, None)
                record = self.transition(
                    decision.job_id,
                    JobState.STARTING,
                    "slot free",
                    gpu_indices=decision.gpu_indices,
                    claimer_pid=pid,
                    claimer_start_time=start,
                )
                return decision, record
            if isinstance(decision, RejectJob):
                self.transition(decision.job_id, JobState.STARTING, "rejected by the queue")
                record = self.transition(
                    decision.job_id, JobState.FAILED_TO_START, decision.reason, reason=decision.reason
                )
                return decision, record
            return None, None

    def _states_of(self, ids: Iterable[int]) -> dict[int, JobState]:
        """id -> state of those of `ids` that exist (dependencies of queued jobs)."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._conn.execute(f"SELECT id, state FROM jobs WHERE id IN ({marks})", wanted)
        return {int(r[0]): JobState(r[1]) for r in rows}

    def finish_if_active(self, job_id: int, new: JobState, note: str = "", **fields: Any) -> JobRecord | None:
        """Move a job to final state `new` unless it already is final (the app and the supervisor may
        both record the same end; the first one wins).  None when nothing changed."""
        with transaction(self._conn):
            row = self._conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or JobState(row["state"]).is_final:
                return None
            return self.transition(job_id, new, note, **fields)

    _SIGNATURE_SQL = (
        "SELECT id, state, queue_position, pid, started_at, finished_at, exit_code, signal, reason,"
        " slurm_job_id, length(result), run_dir FROM jobs"
    )

    def signatures(self) -> dict[int, tuple[Any, ...]]:
        """A cheap fingerprint of every job (id -> changing columns) to notice others' writes."""
        return {int(r[0]): tuple(r[1:]) for r in self._conn.execute(self._SIGNATURE_SQL)}

    def signatures_live(self, after_id: int, also: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """Fingerprints of jobs newer than `after_id`, jobs not final, and the ids in `also`.

        Final jobs do not change on their own, so a poll only needs these (plus a count check to
        notice deletions); the cost stays flat as the history grows.
        """
        ids = list(also)
        sql = (
            f"{self._SIGNATURE_SQL} WHERE id > ? OR state IN {_in_states(UNFINISHED_STATES)}"
            f" OR id IN ({','.join('?' * len(ids))})"
        )
        return {int(r[0]): tuple(r[1:]) for r in self._conn.execute(sql, [after_id, *ids])}

    def signatures_of(self, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(f"{self._SIGNATURE_SQL} WHERE id IN ({marks})", list(ids))
        return {int(r[0]): tuple(r[1:]) for r in rows}

    def delete(self, job_id: int) -> None:
        """Forget a job.  Refused while it may still own processes."""
        with transaction(self._conn):
            job = self.get(job_id)
            if job.state.is_active:
                raise StoreError(f"job {job_id} is {job.state.value.lower()}; cancel it before deleting")
            self._conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def transitions(self, job_id: int) -> list[StateTransition]:
        rows = self._conn.execute(
            "SELECT * FROM job_transitions WHERE job_id = ? ORDER BY id", (job_id,)
        ).fetchall()
        return [
            StateTransition(
                job_id=r["job_id"],
                old=JobState(r["old_state"]) if r["old_state"] else None,
                new=JobState(r["new_state"]),
                at=_parse_ts(r["at"]) or utcnow(),
                note=r["note"],
            )
            for r in rows
        ]

    def count(self, states: Iterable[JobState] | None = None) -> int:
        if states is None:
            return int(self._conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        values = [s.value for s in states]
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ({','.join('?' * len(values))})"
        return int(self._conn.execute(sql, values).fetchone()[0])

    def _update(self, job_id: int, values: dict[str, Any]) -> None:
        assignments = ", ".join(f"{column} = ?" for column in values)
        self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))

    def _record_transition(
        self, job_id: int, old: JobState | None, new: JobState, at: datetime, note: str
    ) -> None:
        self._conn.execute(
            "INSERT INTO job_transitions (job_id, old_state, new_state, at, note) VALUES (?, ?, ?, ?, ?)",
            (job_id, old.value if old else None, new.value, _ts(at), note),
        )
