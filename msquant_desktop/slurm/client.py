"""SLURM over one SSH connection: nodes, queue, submit (never duplicated), final state, logs, scancel.

Blocking by design: a service runs it on the cluster's own worker thread; the CLI calls it directly.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import (
    ClusterProfile,
    FinalState,
    decide_array_final,
    decide_final,
    final_from_marker,
    final_from_slurm,
    is_final_slurm_state,
    map_slurm_state,
)
from msquant_desktop.slurm.connection import SshConnection, SshError
from msquant_desktop.slurm.gpus import GpuView, gpu_view
from msquant_desktop.slurm.parsers import (
    DEMAND_FORMAT,
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    AcctEntry,
    DemandEntry,
    NodeInfo,
    QueueEntry,
    parse_nodes,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_job,
    parse_squeue,
    parse_squeue_demand,
    parse_version,
    split_array_id,
)
from msquant_desktop.slurm.script import RemotePaths

log = logging.getLogger(__name__)


class SlurmError(RuntimeError):
    """A SLURM command failed; the message carries its own words."""


@dataclass
class TrackedJob:
    """What the tracker needs to know about one of our jobs on a cluster.

    An array job names its task indices in `tasks`; `ended_tasks` have a stored final state already
    (not asked about again) and `task_offsets` are how far each task's log has been read.
    """

    job_id: int  # ours
    slurm_job_id: str
    remote: RemotePaths
    log_offset: int = 0
    tasks: tuple[str, ...] = ()
    ended_tasks: frozenset[str] = frozenset()
    task_offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class TaskUpdate:
    """One array task this poll: the queue's state word ("" once it left the queue), its end if known."""

    slurm_state: str
    final: FinalState | None = None


@dataclass
class JobUpdate:
    job_id: int
    state: JobState | None  # None: unknown this poll (keep what we had)
    slurm_state: str = ""
    final: FinalState | None = None
    log_text: str = ""
    log_offset: int = 0
    reason: str | None = None
    tasks: dict[str, TaskUpdate] = field(default_factory=dict)
    """An array job's tasks seen this poll (the job's own state is derived from them by the caller)."""
    task_offsets: dict[str, int] = field(default_factory=dict)


CHECK_FOUND = "found"
CHECK_REFUSED = "refused"
CHECK_ABSENT = "absent"
CHECK_UNKNOWN = "unknown"


@dataclass(frozen=True)
class SubmitCheck:
    """What the cluster says about a submission whose sbatch answer never arrived.

    `outcome` is CHECK_FOUND (the job exists: `slurm_id`), CHECK_REFUSED (sbatch ran and refused it:
    nothing was submitted), CHECK_ABSENT (no job of that name and no sbatch that could still make one)
    or CHECK_UNKNOWN (the cluster cannot tell yet: ask again later).  `detail` says why, in words.
    """

    outcome: str
    slurm_id: str | None = None
    detail: str = ""


SBATCH_STUCK_S = 600.0
"""An sbatch that started this long ago and wrote no exit status has died without an answer."""

# sbatch through `sh`, recording on the cluster that it started, what it printed and its exit status
# (sbatch.started / .out / .err / .rc in the run folder), so a submission whose answer was lost can
# be told apart: refused, submitted, still running, or never started.  HUP and PIPE are ignored and the
# output goes to files: a dropped connection lets sbatch finish and record its answer.  One line, `;`
# separated, for login shells that are not POSIX (tcsh reads a quoted newline as an error).
_SBATCH_WRAPPER = (
    'cd "$1" || exit 97; trap "" HUP PIPE; date +%s > sbatch.started; '
    '"$2" --parsable "$3" > sbatch.out 2> sbatch.err; rc=$?; '
    'echo "$rc" > sbatch.rc.partial && mv -f sbatch.rc.partial sbatch.rc; '
    'cat sbatch.out; cat sbatch.err >&2; exit "$rc"'
)


@dataclass
class PollResult:
    updates: list[JobUpdate] = field(default_factory=list)
    seconds: float = 0.0


class SlurmClient:
    """One cluster's SLURM, reached through one persistent `SshConnection`."""

    def __init__(self, profile: ClusterProfile, connection: SshConnection) -> None:
        self.profile = profile
        self.connection = connection
        self._accounting: bool | None = None
        self._remote_env: dict[str, str] | None = None

    # -- helpers ------------------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return f"{self.profile.slurm_bin.rstrip('/')}/{name}" if self.profile.slurm_bin else name

    def _run(self, name: str, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        result = self.connection.run([self._bin(name), *args], timeout=timeout)
        return result.rc, result.out, result.err

    def _check_env(self, env: dict[str, str], name: str, *args: str, timeout: float = 30.0) -> str:
        """`_check` with environment variables set for this one command (through `env`)."""
        assignments = [f"{key}={value}" for key, value in env.items()]
        result = self.connection.run(["env", *assignments, self._bin(name), *args], timeout=timeout)
        if result.rc != 0:
            raise SlurmError(f"{name} failed (exit {result.rc}): {result.err or result.out.strip()}")
        return result.out

    def _check(self, name: str, *args: str, timeout: float = 30.0) -> str:
        rc, out, err = self._run(name, *args, timeout=timeout)
        if rc != 0:
            raise SlurmError(f"{name} failed (exit {rc}): {err or out.strip()}")
        return out

    def workspace(self) -> str:
        """The profile's workspace with `~` and `$VARS` expanded on the cluster's side (asked once)."""
        if self._remote_env is None:
            out = self.connection.run(["env"]).out
            self._remote_env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        ws = self.profile.workspace
        home = self._remote_env.get("HOME", "")
        if ws == "~" or ws.startswith("~/"):
            ws = home + ws[1:]
        return string.Template(ws).safe_substitute(self._remote_env).rstrip("/")

    # -- cluster facts ------------------------------------------------------------------------------
    def version(self) -> str:
        return parse_version(self._check("sinfo", "--version"))

    def nodes(self) -> list[NodeInfo]:
        return parse_nodes(self._check("scontrol", "-d", "show", "node"))

    def queue(self) -> list[QueueEntry]:
        """Our jobs known to the controller (including just-finished ones), in one squeue call."""
        # `-r`: one line per array task (`46_0`, `46_1`), pending ones too.
        return parse_squeue(self._check("squeue", "--me", "-h", "-r", "-t", "all", "-o", SQUEUE_FORMAT))

    def pending_demand(self) -> list[DemandEntry]:
        """Every user's pending jobs with what they ask for: tres-per-job (`--gpus`), tres-per-node
        (`--gres`, `--gpus-per-node`) and tres-per-task (`--gpus-per-task`); arrays with their task
        expression in full (SLURM_BITSTR_LEN=0, or squeue cuts it at 64 characters)."""
        out = self._check_env({"SLURM_BITSTR_LEN": "0"}, "squeue", "-h", "-t", "PENDING", "-O", DEMAND_FORMAT)
        return parse_squeue_demand(out)

    def running_in_arrays(self, array_ids: list[str]) -> dict[str, int]:
        """Running tasks of each of these arrays (what their `%N` throttles are measured against)."""
        if not array_ids:
            return {}
        states = "RUNNING,CONFIGURING,COMPLETING,SUSPENDED"
        out = self._check("squeue", "-h", "-t", states, "-j", ",".join(array_ids), "-O", "arrayjobid:|")
        counts: dict[str, int] = {}
        for line in out.splitlines():
            array_id = line.split("|", 1)[0].strip()
            if array_id in array_ids:
                counts[array_id] = counts.get(array_id, 0) + 1
        return counts

    def gpu_view(self) -> GpuView:
        """Free GPUs per node, partition and type, with the queue's pending demand (two commands, a
        third when a pending array has a `%N` throttle)."""
        pending = self.pending_demand()
        throttled = sorted(
            {e.array_job_id or e.job_id for e in pending if e.array is not None and e.array.throttle}
        )
        return gpu_view(self.nodes(), pending, self.profile, self.running_in_arrays(throttled))

    def accounting_available(self) -> bool:
        """Whether `sacct` works here; detected once per client ("not available" is a value)."""
        if self._accounting is None:
            if self.profile.accounting == "off":
                self._accounting = False
            else:
                rc, _, err = self._run("sacct", "-n", "-X", "-P", "-j", "1", "-o", "JobID")
                self._accounting = rc == 0
                if rc != 0:
                    log.info(
                        "cluster %s has no usable sacct (%s); using scontrol and exit markers",
                        self.profile.name,
                        err,
                    )
        return self._accounting

    def sacct(self, slurm_ids: list[str]) -> dict[str, AcctEntry]:
        """Accounting records by job id; an array's tasks under `46_0`, `46_1`, ... (a record of
        tasks that never started, `46_[1-2]`, under each of its tasks)."""
        if not slurm_ids or not self.accounting_available():
            return {}
        rc, out, err = self._run("sacct", "-n", "-X", "-P", "-j", ",".join(slurm_ids), "-o", SACCT_FIELDS)
        if rc != 0:
            log.warning("sacct on %s failed: %s", self.profile.name, err)
            return {}
        entries: dict[str, AcctEntry] = {}
        for entry in parse_sacct(out):
            base, tasks = split_array_id(entry.job_id)
            for task in tasks or ():
                entries.setdefault(f"{base}_{task}", entry)
            entries[entry.job_id] = entry
        return entries

    def scontrol_job(self, slurm_id: str) -> dict[str, str]:
        rc, out, _ = self._run("scontrol", "show", "job", slurm_id)
        return parse_scontrol_job(out) if rc == 0 else {}

    # -- submit -------------------------------------------------------------------------------------
    def find_by_name(self, slurm_name: str) -> str | None:
        """The id of a job already submitted under this unique name (queue first, then accounting);
        an array's own id, never one task's.  Raises SlurmError when squeue cannot answer."""
        out = self._check("squeue", "--me", "-h", "-t", "all", "-n", slurm_name, "-o", "%i")
        ids = [line.strip() for line in out.splitlines() if line.strip()]
        if not ids and self.accounting_available():
            rc, acct, _ = self._run(
                "sacct", "-n", "-X", "-P", "--name", slurm_name, "-S", "now-7days", "-o", "JobID"
            )
            ids = [line.strip() for line in acct.splitlines() if line.strip()] if rc == 0 else []
        return split_array_id(ids[0])[0] if ids else None

    def upload_script(self, remote: RemotePaths, script: str, files: Mapping[str, bytes] | None = None) -> None:
        """The run folder, the files the script reads (a sweep's task overrides), then the script."""
        self.connection.mkdir_private(remote.run_dir)
        for path, data in (files or {}).items():
            self.connection.write_file(path, data)
        self.connection.write_file(remote.script, script.encode("utf-8"), mode=0o700)

    def sbatch(self, remote: RemotePaths) -> str:
        """Run sbatch once on the uploaded script; its id.  SlurmError when sbatch refused the job
        (nothing was submitted); SshError when the connection failed (the job may exist: see
        `check_submission`); ValueError when sbatch printed no id (the job may exist)."""
        argv = [
            "sh",
            "-c",
            _SBATCH_WRAPPER,
            "msquant-sbatch",
            remote.run_dir,
            self._bin("sbatch"),
            remote.script,
        ]
        result = self.connection.run(argv)
        if result.rc != 0:
            raise SlurmError(f"sbatch refused the job: {result.err or result.out.strip()}")
        return parse_sbatch_parsable(result.out)

    def submit(self, remote: RemotePaths, script: str, slurm_name: str) -> str:
        """Upload and sbatch (once); the job id."""
        self.upload_script(remote, script)
        return self.sbatch(remote)

    def check_submission(self, remote: RemotePaths, slurm_name: str) -> SubmitCheck:
        """Whether a submission whose sbatch answer was lost exists: by its unique name in the queue
        and accounting, then by what sbatch recorded in the run folder.  Read-only: never submits.
        Raises SshError when the connection fails (the caller asks again later)."""
        try:
            found = self.find_by_name(slurm_name)
        except SlurmError as exc:
            return SubmitCheck(CHECK_UNKNOWN, detail=f"the queue cannot be read: {exc}")
        if found:
            return SubmitCheck(CHECK_FOUND, found, f"found in the queue as job {found}")
        rc_text, _ = self.read_text(remote.sbatch_rc)
        if rc_text.strip():
            out, _ = self.read_text(remote.sbatch_out)
            err, _ = self.read_text(remote.sbatch_err)
            if rc_text.strip() != "0":
                words = (err or out).strip() or f"exit {rc_text.strip()}"
                return SubmitCheck(CHECK_REFUSED, detail=f"sbatch refused the job: {words}")
            try:
                slurm_id = parse_sbatch_parsable(out)
            except ValueError:
                return SubmitCheck(
                    CHECK_ABSENT, detail=f"sbatch printed no job id and no job is named {slurm_name}"
                )
            return SubmitCheck(
                CHECK_FOUND, slurm_id, f"sbatch recorded job {slurm_id} (no longer in the queue)"
            )
        started, _ = self.read_text(remote.sbatch_started)
        if started.strip():
            now_text = self.connection.run(["date", "+%s"]).out.strip()
            try:
                age = float(now_text) - float(started.strip())
            except ValueError:
                age = 0.0
            if age < SBATCH_STUCK_S:
                return SubmitCheck(
                    CHECK_UNKNOWN, detail=f"sbatch is still running on the cluster ({age:.0f} s)"
                )
            return SubmitCheck(
                CHECK_ABSENT,
                detail=f"sbatch started {age:.0f} s ago and never finished; no job is named {slurm_name}",
            )
        return SubmitCheck(CHECK_ABSENT, detail=f"no job is named {slurm_name} and sbatch never ran there")

    # -- final state --------------------------------------------------------------------------------
    def read_text(
        self, path: str, offset: int = 0, limit: int = 1 << 20, whole_lines: bool = False
    ) -> tuple[str, int]:
        """Text of `path` from `offset` and the new offset; ('', offset) when it does not exist.

        With `whole_lines`, a last line still being written is left for the next read, so every
        piece handed on is complete lines (and a UTF-8 character is never cut in two).
        """
        data = self.connection.read_from(path, offset, limit)
        if not data:
            return "", offset
        if whole_lines:
            data = data[: data.rfind(b"\n") + 1]
        return data.decode("utf-8", errors="replace"), offset + len(data)

    def log_tail(self, remote: RemotePaths, size: int = 16384) -> str:
        rc, out, _ = self._run("tail", "-c", str(size), remote.log)
        return out if rc == 0 else ""

    def resolve_final(
        self,
        slurm_id: str,
        remote: RemotePaths,
        acct: AcctEntry | None = None,
        queue_state: str | None = None,
    ) -> FinalState | None:
        """Gather every source (sacct, scontrol, squeue's last word, the exit marker, the log tail)
        and let `decide_final` weigh them; see its docstring for the documented precedence.

        None while no source says the job is over (it is then still running or about to be).
        Never "completed" by default: unknown stays unknown.
        """
        controller = None
        if acct is not None:
            controller = final_from_slurm(acct.state, acct.exit_code, "sacct", acct.reason or "")
        if controller is None:
            info = self.scontrol_job(slurm_id)
            if info:
                controller = final_from_slurm(
                    info.get("JobState", ""), info.get("ExitCode", ""), "scontrol", info.get("Reason", "")
                )
                if controller is None and not is_final_slurm_state(info.get("JobState", "")):
                    return None  # the controller still has it running
        if controller is None and queue_state:
            controller = final_from_slurm(queue_state, "", "squeue")
        marker_text, _ = self.read_text(remote.marker)
        marker = final_from_marker(marker_text) if marker_text else None
        return decide_final(controller, marker, self.log_tail(remote))

    # -- tracking -----------------------------------------------------------------------------------
    def poll(self, tracked: list[TrackedJob], tail_logs: bool = True) -> PollResult:
        """One squeue for all `tracked` jobs; the final state of those that left it; new log text.
        An array job is followed task by task (see `_poll_array`)."""
        started = time.perf_counter()
        result = PollResult()
        if not tracked:
            return result
        queue = self.queue()
        by_id = {e.job_id: e for e in queue}
        tasks_of = _tasks_by_array(queue)
        plain = [t for t in tracked if not t.tasks]
        departed = [
            t
            for t in plain
            if t.slurm_job_id not in by_id or is_final_slurm_state(by_id[t.slurm_job_id].state)
        ]
        acct = self.sacct([t.slurm_job_id for t in departed])
        for job in tracked:
            if job.tasks:
                result.updates.append(self._poll_array(job, tasks_of.get(job.slurm_job_id, {}), tail_logs))
                continue
            update = JobUpdate(job.job_id, None, log_offset=job.log_offset)
            entry = by_id.get(job.slurm_job_id)
            if entry is not None:
                update.slurm_state = entry.state
                update.reason = entry.reason
            if tail_logs:
                update.log_text, update.log_offset = self.read_text(
                    job.remote.log, job.log_offset, whole_lines=True
                )
            if job in departed:
                update.final = self.resolve_final(
                    job.slurm_job_id,
                    job.remote,
                    acct.get(job.slurm_job_id),
                    entry.state if entry is not None else None,
                )
                if update.final is not None:
                    update.state = update.final.state
                    if tail_logs:  # the last lines written before the end
                        more, update.log_offset = self.read_text(job.remote.log, update.log_offset)
                        update.log_text += more
                elif entry is None:
                    update.state = None  # left the queue, nobody knows yet: LOST is the caller's call
            elif entry is not None:
                update.state = map_slurm_state(entry.state)
            result.updates.append(update)
        result.seconds = time.perf_counter() - started
        return result

    def _poll_array(self, job: TrackedJob, in_queue: dict[str, QueueEntry], tail_logs: bool) -> JobUpdate:
        """Each task not ended yet: its queue state, its final state once it left the queue (every
        source, as for a plain job, under the task's own id `46_1` and files), its new log lines with
        the task's id in front.  `update.state` says RUNNING while any task runs, QUEUED while the
        open ones all wait; the job's final state is the caller's to derive once every task ended
        (`domain.slurm.decide_array_final`)."""
        sid = job.slurm_job_id
        update = JobUpdate(job.job_id, None, log_offset=job.log_offset)
        open_tasks = [i for i in job.tasks if i not in job.ended_tasks]
        departed = [i for i in open_tasks if i not in in_queue or is_final_slurm_state(in_queue[i].state)]
        acct = self.sacct([sid]) if departed else {}
        words: dict[str, int] = {}
        for index in open_tasks:
            entry = in_queue.get(index)
            task = TaskUpdate(entry.state if entry is not None else "")
            paths = job.remote.for_task(index)
            offset = job.task_offsets.get(index, 0)
            text = ""
            waiting = entry is not None and map_slurm_state(entry.state) is JobState.QUEUED
            if tail_logs and not waiting:
                text, offset = self.read_text(paths.log, offset, whole_lines=True)
            if index in departed:
                task.final = self.resolve_final(
                    f"{sid}_{index}", paths, acct.get(f"{sid}_{index}"), entry.state if entry else None
                )
                if task.final is not None and tail_logs:
                    more, offset = self.read_text(paths.log, offset)
                    text += more
            if text:
                update.log_text += "".join(f"[{sid}_{index}] {line}\n" for line in text.splitlines())
            update.task_offsets[index] = offset
            update.tasks[index] = task
            word = task.final.state.value if task.final is not None else task.slurm_state
            if word:
                words[word] = words.get(word, 0) + 1
        update.slurm_state = ", ".join(f"{n} {word}" for word, n in sorted(words.items()))
        states = {map_slurm_state(t.slurm_state) for t in update.tasks.values() if t.final is None}
        if JobState.RUNNING in states:
            update.state = JobState.RUNNING
        elif JobState.QUEUED in states:
            update.state = JobState.QUEUED
        return update

    # -- cancel -------------------------------------------------------------------------------------
    def cancel(
        self, slurm_id: str, remote: RemotePaths, confirm_s: float = 20.0, tasks: tuple[str, ...] = ()
    ) -> FinalState | None:
        """scancel, then wait until a source confirms the job is over; its final state, or None.
        For an array job (`tasks`), once no task is left in the queue: the state its tasks give."""
        rc, out, err = self._run("scancel", slurm_id)
        if rc != 0:
            raise SlurmError(f"scancel {slurm_id} failed (exit {rc}): {err or out.strip()}")
        deadline = time.monotonic() + confirm_s
        while time.monotonic() < deadline:
            queue = self.queue()
            if tasks:
                final = self._array_final_if_over(
                    slurm_id, remote, tasks, _tasks_by_array(queue).get(slurm_id, {})
                )
                if final is not None:
                    return final
                time.sleep(0.2)
                continue
            entries = {e.job_id: e for e in queue}
            entry = entries.get(slurm_id)
            if entry is None or is_final_slurm_state(entry.state):
                acct = self.sacct([slurm_id]).get(slurm_id)
                final = self.resolve_final(slurm_id, remote, acct, entry.state if entry else None)
                if final is not None:
                    return final
            time.sleep(0.2)
        return None

    def _array_final_if_over(
        self, slurm_id: str, remote: RemotePaths, tasks: tuple[str, ...], in_queue: dict[str, QueueEntry]
    ) -> FinalState | None:
        if any(not is_final_slurm_state(entry.state) for entry in in_queue.values()):
            return None
        acct = self.sacct([slurm_id])
        finals: dict[str, FinalState] = {}
        for index in tasks:
            entry = in_queue.get(index)
            final = self.resolve_final(
                f"{slurm_id}_{index}",
                remote.for_task(index),
                acct.get(f"{slurm_id}_{index}"),
                entry.state if entry else None,
            )
            if final is None:
                return None
            finals[index] = final
        return decide_array_final(slurm_id, finals)


def _tasks_by_array(queue: list[QueueEntry]) -> dict[str, dict[str, QueueEntry]]:
    """Queue entries of array tasks by array id and task index (`46_1`, and `46_[2-3]` under 2 and 3)."""
    out: dict[str, dict[str, QueueEntry]] = {}
    for entry in queue:
        base, tasks = split_array_id(entry.job_id)
        for index in tasks or ():
            out.setdefault(base, {})[index] = entry
    return out


_WANDB_URL = re.compile(r"https://(?:[\w.-]*\.)?wandb\.(?:ai|io)/[\w./%-]+/runs/[\w-]+")
_WANDB_OFFLINE = re.compile(r"(\S*wandb/offline-run-\d{8}_\d{6}-\w+)")


def detect_wandb(text: str) -> tuple[list[str], list[str]]:
    """W&B run URLs and offline run folders mentioned in log text (deduplicated, in order)."""
    urls = list(dict.fromkeys(_WANDB_URL.findall(text)))
    offline = list(dict.fromkeys(m.rstrip("/.,") for m in _WANDB_OFFLINE.findall(text)))
    return urls, offline


__all__ = [
    "CHECK_ABSENT",
    "CHECK_FOUND",
    "CHECK_REFUSED",
    "CHECK_UNKNOWN",
    "JobUpdate",
    "PollResult",
    "SlurmClient",
    "SlurmError",
    "SshError",
    "SubmitCheck",
    "TaskUpdate",
    "TrackedJob",
    "detect_wandb",
]
