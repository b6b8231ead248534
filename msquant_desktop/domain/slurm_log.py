"""What Slurm itself wrote into a job's output about how the job ended.  Standard library only.

Every line of the tail is weighed, not just the last match: after an OOM kill Slurm also prints
`*** STEP … CANCELLED AT … ***`, and calling that a user cancel loses the real cause.  The strongest
cause wins, in this order (`PRECEDENCE`):

    oom_kill > time_limit > preemption > node_failure > task_failure > cancel

Message generations recognised (each has a recorded real sample in tests/slurm/fixtures/steplog/):

- `slurmstepd: *** JOB 1 CANCELLED AT <ts> DUE TO TIME LIMIT on host ***`   (before 15.08)
- `slurmstepd: *** JOB 1 CANCELLED AT <ts> *** on host`                     (before 15.08)
- `slurmstepd: error: *** JOB 1 ON host CANCELLED AT <ts> DUE TO … ***`     (15.08 and later)
- `slurmstepd-<node>: error: …` (multiple-slurmd builds), `  0: …` (srun --label),
  `[2026-04-29T23:36:37.809] error: …` (timestamped), with or without `error:`
- `*** STEP 1.0 ON host CANCELLED AT <ts> DUE TO TASK FAILURE ***` (a failure, not a cancel) and
  `*** JOB 1 ON host FAILED (non-zero exit code or other failure mode) ***`
- OOM: `Detected N oom-kill event(s) in step 1.batch cgroup` (17.11–20.02),
  `Detected N oom-kill event(s) in StepId=1.batch` (20.11–22.05),
  `Detected N oom_kill event(s) in StepId=1.0. Some of the step tasks have been OOM Killed.` (22.05+),
  `Job 1 exceeded memory limit (A > B), being killed` / `StepId=1.0 exceeded memory limit …` +
  `Exceeded job memory limit` (jobacct_gather enforcement), `srun: error: node: task 0: Out Of Memory`
- `srun: error: Node failure on host`; `srun: error: node: task 3: Exited with exit code 1` and
  crashes (segfault, bus error, abort, …) as task failures.

Deliberately not evidence: `Exceeded step memory limit at some point` and `hit memory limit at least
once` (Slurm says itself these "may or may not result in some failure"), `task N: Killed` /
`Terminated` (the consequence of a cancel, not a cause), `DUE TO JOB REQUEUE` (the job goes on),
and any application text such as PyTorch's "CUDA out of memory".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OOM = "oom_kill"
TIME_LIMIT = "time_limit"
PREEMPTION = "preemption"
NODE_FAILURE = "node_failure"
TASK_FAILURE = "task_failure"
CANCEL = "cancel"
PRECEDENCE = (OOM, TIME_LIMIT, PREEMPTION, NODE_FAILURE, TASK_FAILURE, CANCEL)

REASONS = {
    OOM: "out of memory (killed by Slurm's memory enforcement)",
    TIME_LIMIT: "time limit reached",
    PREEMPTION: "preempted",
    NODE_FAILURE: "node failure",
    TASK_FAILURE: "a task of the job failed",
    CANCEL: "cancelled",
}

# How many trailing lines are weighed: the caller hands a tail (16 KiB), this bounds pathological input.
MAX_LINES = 2000


@dataclass(frozen=True)
class LogEvidence:
    """One line of Slurm's own about the end of the job.

    `scope` is "job" (`*** JOB …`), "batch" (the batch step: the script itself), or "step" (an srun
    step or one of its tasks: the script may have handled it and gone on).
    """

    cause: str
    scope: str
    line: str

    @property
    def rank(self) -> int:
        return PRECEDENCE.index(self.cause)


# `*** JOB 12 ON node1 CANCELLED AT 2026-… DUE TO TIME LIMIT ***`, `*** STEP 3.0 CANCELLED AT … ***
# on host`, `*** JOB 7 CANCELLED AT … DUE TO NODE node3 FAILURE ***`: entity, id, the text after it.
_BANNER = re.compile(r"\*\*\*\s+(JOB|STEP)\s+(\S+)\s+(.*?)\*\*\*", re.IGNORECASE)
_CANCELLED_AT = re.compile(r"CANCELLED\s+AT\s+\S+(.*)$", re.IGNORECASE)
_FAILED_MODE = re.compile(r"FAILED\s+\(non-zero exit code", re.IGNORECASE)
_OOM_EVENTS = re.compile(
    r"Detected\s+\d+\s+oom[-_]kill\s+events?(?:\(s\))?(?:\s+in\s+(?:step\s+|StepId=)?(\S+))?", re.IGNORECASE
)
_OOM_JOBACCT = re.compile(
    r"\b(Job\s+|Step\s+|JobId=|StepId=)(\S+)\s+exceeded\s+(?:virtual\s+)?memory\s+limit\s+\(\d+\s*>\s*\d+\),"
    r"\s+being\s+killed",
    re.IGNORECASE,
)
_OOM_NOTIFY = re.compile(r"Exceeded\s+job\s+memory\s+limit\s*$", re.IGNORECASE)
_SRUN_TASK = re.compile(r"\bsrun:\s+error:\s+\S+:\s+tasks?\s+[\d,\-\[\]]+:\s+(.+?)\s*$", re.IGNORECASE)
_SRUN_NODE_FAIL = re.compile(r"\bsrun:\s+error:\s+Node\s+failure\s+on\s+\S+", re.IGNORECASE)
_TASK_CRASHES = re.compile(
    r"^(?:Exited with exit code [1-9]\d*|Segmentation fault|Bus error|Aborted|Floating point exception"
    r"|Illegal instruction|Broken pipe)",
    re.IGNORECASE,
)


def _step_scope(step_id: str) -> str:
    """`65138579.batch` / `StepId=65138579.batch.` -> batch; `3495064.0` -> step; `12` -> job."""
    step_id = step_id.rstrip(".,;:")
    if step_id.lower().endswith(".batch"):
        return "batch"
    return "step" if "." in step_id else "job"


def _banner_cause(tail: str) -> str | None:
    upper = " ".join(tail.upper().split())
    if "DUE TO TIME LIMIT" in upper:
        return TIME_LIMIT
    if "DUE TO PREEMPTION" in upper:
        return PREEMPTION
    if re.search(r"DUE TO NODE (\S+ )?FAILURE", upper):
        return NODE_FAILURE
    if "DUE TO TASK FAILURE" in upper:
        return TASK_FAILURE
    if "DUE TO JOB REQUEUE" in upper:
        return None  # requeued: the job is not over
    return CANCEL  # plain, or `DUE to SIGNAL Terminated`


def evidence_in_line(line: str) -> LogEvidence | None:
    """The end-of-job evidence in one line, or None."""
    text = line.strip()
    if not text:
        return None
    banner = _BANNER.search(text)
    if banner:
        entity, ident, rest = banner.group(1).upper(), banner.group(2), banner.group(3)
        scope = "job" if entity == "JOB" else _step_scope(ident)
        cancelled = _CANCELLED_AT.search(rest)
        if cancelled:
            cause = _banner_cause(cancelled.group(1))
            return LogEvidence(cause, scope, text) if cause else None
        if _FAILED_MODE.search(rest):
            return LogEvidence(TASK_FAILURE, scope, text)
        return None
    oom = _OOM_EVENTS.search(text)
    if oom:
        return LogEvidence(OOM, _step_scope(oom.group(1)) if oom.group(1) else "step", text)
    oom = _OOM_JOBACCT.search(text)
    if oom:
        scope = "job" if oom.group(1).lower().startswith("job") else _step_scope(oom.group(2))
        return LogEvidence(OOM, scope, text)
    if _OOM_NOTIFY.search(text):
        return LogEvidence(OOM, "step" if text.lower().startswith("srun") else "job", text)
    if _SRUN_NODE_FAIL.search(text):
        return LogEvidence(NODE_FAILURE, "step", text)
    task = _SRUN_TASK.search(text)
    if task:
        what = task.group(1)
        if what.lower().startswith("out of memory"):
            return LogEvidence(OOM, "step", text)
        if _TASK_CRASHES.match(what):
            return LogEvidence(TASK_FAILURE, "step", text)
    return None


def read_evidence(text: str) -> list[LogEvidence]:
    """Every line of evidence in the tail, in order."""
    found = []
    for line in text.splitlines()[-MAX_LINES:]:
        evidence = evidence_in_line(line)
        if evidence is not None:
            found.append(evidence)
    return found


def strongest(evidence: list[LogEvidence]) -> LogEvidence | None:
    """The deciding line: the highest cause in PRECEDENCE; among equals a job-wide line, then the last."""
    if not evidence:
        return None
    scope_rank = {"job": 0, "batch": 1, "step": 2}
    best = None
    for item in evidence:  # later lines win ties, so iterate in order and replace on <=
        key = (item.rank, scope_rank.get(item.scope, 3))
        if best is None or key <= (best.rank, scope_rank.get(best.scope, 3)):
            best = item
    return best
