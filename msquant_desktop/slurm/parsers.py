"""Parsers for SLURM's text outputs (22.05 and later), tested against recorded real outputs.

Bytes are decoded leniently (job names are not always UTF-8); `(null)`, `N/A` and empty values are
None; GRES may be typed (`gpu:a100:2`) or untyped (`gpu:2`) and carry `(S:0-1)` / `(IDX:0-1)` suffixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# squeue's format: fixed field order, '|' separated (`-O` would cut at 20 characters).
SQUEUE_FORMAT = "%i|%T|%r|%b|%P|%N|%M|%l|%j"
SACCT_FIELDS = "JobID,State,ExitCode,Reason,Start,End,JobName"

NULLS = frozenset({"", "(null)", "N/A", "n/a", "None", "(None)"})
UNTYPED = ""  # the GPU "type" of untyped GRES such as gpu:2


def decode(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _null(value: str | None) -> str | None:
    return None if value is None or value.strip() in NULLS else value.strip()


# -- key=value blocks (scontrol show node / job) ----------------------------------------------------

_KV = re.compile(r"(?:^|\s)([A-Za-z][\w/:]*)=")


def parse_key_values(block: str) -> dict[str, str]:
    """`A=1 B=two words C=(null)` -> {A: '1', B: 'two words', C: '(null)'}.

    Values may contain spaces (Reason=fan broken [root@...]), so a value runs until the next `Key=`.
    """
    out: dict[str, str] = {}
    for line in block.splitlines():
        matches = list(_KV.finditer(line))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
            out[m.group(1)] = line[m.end() : end].strip()
    return out


def split_records(text: str, first_key: str) -> list[str]:
    """Blocks starting with `first_key=` (records are separated by blank lines)."""
    records: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith(f"{first_key}="):
            if current:
                records.append("\n".join(current))
            current = [line]
        elif current and line.strip():
            current.append(line)
    if current:
        records.append("\n".join(current))
    return records


# -- GRES --------------------------------------------------------------------------------------------


def parse_gres(text: str | None) -> dict[str, int]:
    """GPU counts by type from `gpu:a100:2,gpu:h100:1(S:0)` / `gpu:2` / `gres:gpu:a100:1` / `(null)`,
    and the forms of squeue's tres-per-* fields: `gpu:12` (19.05), `gres:gpu:3` (21.08, 22.05),
    `gres/gpu:2` (later), and `cpu=4,gres/gpu=1` / `gres/gpu:a100=2` (tres-per-task, 23.11+).

    Untyped GPUs are counted under "" (UNTYPED); non-GPU GRES and TRES are ignored.
    """
    counts: dict[str, int] = {}
    value = _null(text)
    if value is None:
        return counts
    for item in re.split(r",(?![^()]*\))", value):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if item.startswith("gres:"):
            item = item[len("gres:") :]
        elif item.startswith("gres/"):
            item = item[len("gres/") :]
        if "=" in item:  # TRES style: `gpu=1`, `gpu:a100=2` (and `cpu=4`, ignored below)
            item = item.replace("=", ":", 1)
        parts = item.split(":")
        if not parts or parts[0] != "gpu":
            continue
        gpu_type, count = UNTYPED, 1
        if len(parts) == 2:
            if parts[1].isdigit():
                count = int(parts[1])
            else:
                gpu_type = parts[1]
        elif len(parts) >= 3:
            gpu_type = parts[1]
            count = int(parts[2]) if parts[2].isdigit() else 1
        counts[gpu_type] = counts.get(gpu_type, 0) + count
    return counts


# -- nodes ---------------------------------------------------------------------------------------------


# Node states (and `+FLAG`s) that take no new work.  A trailing `*` means "not responding".  The
# spellings are scontrol's (src/common/slurm_protocol_defs.c, node state names) and sinfo's.
_UNUSABLE_FLAGS = frozenset(
    {
        "DOWN",
        "DRAIN",
        "DRAINING",
        "DRAINED",
        "FAIL",
        "FAILING",
        "NOT_RESPONDING",
        "POWERED_DOWN",
        "POWER_DOWN",
        "POWERING_DOWN",
        "FUTURE",
        "MAINT",
        "MAINTENANCE",  # how scontrol spells MAINT (`IDLE+MAINTENANCE+RESERVED`); sinfo prints `maint`
        "ERROR",
        "INVALID_REG",
        "POWERING_UP",
        "REBOOT_ISSUED",
        "UNKNOWN",
        "INVAL",
        "RESERVED",
    }
)


@dataclass(frozen=True)
class NodeInfo:
    """One node from `scontrol -d show node`."""

    name: str
    state: str  # e.g. IDLE, MIXED, ALLOCATED, IDLE+DRAIN, DOWN*
    partitions: tuple[str, ...]
    gpus_total: dict[str, int] = field(default_factory=dict)
    gpus_used: dict[str, int] = field(default_factory=dict)
    cpus_total: int = 0
    cpus_alloc: int = 0
    memory_mb: int = 0
    memory_alloc_mb: int = 0
    reason: str | None = None

    @property
    def usable(self) -> bool:
        """False for nodes that take no new work (down, drained, failing, not responding)."""
        flags = set(self.state.upper().rstrip("*$~#%!@^-").split("+"))
        return not (flags & _UNUSABLE_FLAGS) and not self.state.endswith("*")

    def gpus_free(self, gpu_type: str) -> int:
        return max(0, self.gpus_total.get(gpu_type, 0) - self.gpus_used.get(gpu_type, 0))


def _int(value: str | None) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


def parse_nodes(data: bytes | str) -> list[NodeInfo]:
    nodes = []
    for block in split_records(decode(data), "NodeName"):
        kv = parse_key_values(block)
        total = parse_gres(kv.get("Gres"))
        used = parse_gres(kv.get("GresUsed"))
        # `GresUsed=gpu:0` for an untyped configuration; keep only types the node has.
        used = {t: n for t, n in used.items() if t in total or n}
        nodes.append(
            NodeInfo(
                name=kv["NodeName"].split()[0],
                state=kv.get("State", "UNKNOWN").split()[0],
                partitions=tuple(p for p in (_null(kv.get("Partitions")) or "").split(",") if p),
                gpus_total=total,
                gpus_used=used,
                cpus_total=_int(kv.get("CPUTot")),
                cpus_alloc=_int(kv.get("CPUAlloc")),
                memory_mb=_int(kv.get("RealMemory")),
                memory_alloc_mb=_int(kv.get("AllocMem")),
                reason=_null(kv.get("Reason")),
            )
        )
    return nodes


# -- squeue ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    state: str
    reason: str | None
    gres: dict[str, int]
    partition: str
    nodes: str | None
    elapsed: str
    time_limit: str
    name: str


def parse_squeue(data: bytes | str) -> list[QueueEntry]:
    """Lines of `squeue -h -o SQUEUE_FORMAT`; the job name is last so a `|` in it cannot shift fields."""
    entries = []
    for line in decode(data).splitlines():
        if not line.strip():
            continue
        parts = line.split("|", 8)
        if len(parts) < 9:
            continue
        job_id, state, reason, gres, partition, nodes, elapsed, limit, name = parts
        entries.append(
            QueueEntry(
                job_id=job_id.strip(),
                state=state.strip(),
                reason=_null(reason),
                gres=parse_gres(gres),
                partition=partition.strip(),
                nodes=_null(nodes),
                elapsed=elapsed.strip(),
                time_limit=limit.strip(),
                name=name,
            )
        )
    return entries


# -- squeue: the queue's GPU demand ---------------------------------------------------------------

# `-O` fields (all present since 18.08; an unknown one makes squeue print an empty column and an
# error on stderr, so an older cluster degrades to "no tres-per-*" instead of failing).  `:|` sets no
# width (no truncation) and `|` as the separator.  `jobid` of a pending array's record is the array's
# id; `arraytaskid` is its task expression (`0-467`, `1,3,5-9`, `1-99:2`, `4-10%2`), which squeue cuts
# at 64 characters ending in `...` unless SLURM_BITSTR_LEN=0 is set (the client sets it).
DEMAND_FIELDS = (
    "jobid",
    "arrayjobid",
    "arraytaskid",
    "state",
    "reason",
    "partition",
    "numnodes",
    "numtasks",
    "tres-per-node",
    "tres-per-job",
    "tres-per-task",
    "gres",
)
DEMAND_FORMAT = ",".join(f"{name}:|" for name in DEMAND_FIELDS)


@dataclass(frozen=True)
class ArrayTasks:
    """A job array's task expression: how many tasks it names and its `%N` throttle.

    `truncated` means squeue cut the expression (`…,19...`): `count` is then a lower bound.
    """

    count: int
    throttle: int | None = None
    truncated: bool = False


_ARRAY_ITEM = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


def parse_array_tasks(text: str | None) -> ArrayTasks | None:
    """`0-467` -> 468 tasks; `1,3,5-9` -> 7; `1-99:2` -> 50; `4-10%2` -> 7 with throttle 2; None for
    `N/A` (not an array) or a single task id such as `3` of a running task (count 1)."""
    value = _null(text)
    if value is None:
        return None
    throttle = None
    if "%" in value:
        value, _, limit = value.partition("%")
        throttle = int(limit) if limit.strip().isdigit() else None
    truncated = value.endswith("...")
    if truncated:
        value = value[: -len("...")]
    items = [item for item in value.strip("[]").split(",") if item]
    if truncated and items:
        items = items[:-1]  # the last item was cut mid-number
    count = 0
    for item in items:
        match = _ARRAY_ITEM.fullmatch(item.strip())
        if not match:
            continue
        first, last, step = match.group(1), match.group(2), match.group(3)
        if last is None:
            count += 1
        else:
            count += len(range(int(first), int(last) + 1, int(step) if step else 1))
    return ArrayTasks(count, throttle, truncated)


def array_task_ids(text: str | None) -> list[str]:
    """The task indices a task expression names, in order: `0-2` -> 0, 1, 2; `1,4-8:2%1` -> 1, 4, 6,
    8 (the `%N` throttle limits how many run at once, not which exist); [] for None, `N/A` or text that
    is not a task expression."""
    value = _null(text)
    if value is None:
        return []
    value = value.strip("[]").split("%", 1)[0]
    ids: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        match = _ARRAY_ITEM.fullmatch(item)
        if not match:
            return []
        first, last, step = match.group(1), match.group(2), match.group(3)
        if last is None:
            ids.append(str(int(first)))
        else:
            ids.extend(str(i) for i in range(int(first), int(last) + 1, int(step) if step else 1))
    return list(dict.fromkeys(ids))


def split_array_id(job_id: str) -> tuple[str, list[str] | None]:
    """squeue's and sacct's job ids: `46` -> ("46", None); a task `46_1` -> ("46", ["1"]); tasks not
    split off yet, as pending or cancelled-while-pending records show them, `46_[1-2,5%2]` -> ("46",
    ["1", "2", "5"])."""
    base, sep, tasks = job_id.strip().partition("_")
    if not sep:
        return base, None
    return base, array_task_ids(tasks)


@dataclass(frozen=True)
class DemandEntry:
    """One record of `squeue -O DEMAND_FORMAT`: a job, a pending array, or one task of an array."""

    job_id: str
    array_job_id: str | None
    array: ArrayTasks | None
    state: str
    reason: str | None
    partition: str
    nodes: int
    tasks: int
    per_node: dict[str, int]
    per_job: dict[str, int]
    per_task: dict[str, int]

    @property
    def instances(self) -> int:
        """Jobs this record stands for: a pending array's task count, else 1."""
        return self.array.count if self.array is not None else 1

    def gpus_each(self) -> dict[str, int]:
        """GPUs one instance asks for, by type: per job + per node × nodes + per task × tasks."""
        out: dict[str, int] = dict(self.per_job)
        for counts, factor in ((self.per_node, max(1, self.nodes)), (self.per_task, max(1, self.tasks))):
            for gpu_type, n in counts.items():
                out[gpu_type] = out.get(gpu_type, 0) + n * factor
        return out


def parse_squeue_demand(data: bytes | str) -> list[DemandEntry]:
    """Lines of `squeue -h -O DEMAND_FORMAT` (every field ends in `|`)."""
    entries = []
    width = len(DEMAND_FIELDS)
    for line in decode(data).splitlines():
        parts = line.split("|")
        if len(parts) < width:
            continue
        f = dict(zip(DEMAND_FIELDS, (part.strip() for part in parts[:width]), strict=True))
        per_node_text = f["tres-per-node"] if f["tres-per-node"] else f["gres"]  # "" = unknown field
        array_job = _null(f["arrayjobid"])
        array = parse_array_tasks(f["arraytaskid"]) if f["state"].upper() == "PENDING" else None
        entries.append(
            DemandEntry(
                job_id=f["jobid"],
                array_job_id=array_job if array_job and array_job != "0" else None,
                array=array,
                state=f["state"],
                reason=_null(f["reason"]),
                partition=f["partition"],
                nodes=_int(f["numnodes"]) or 1,
                tasks=_int(f["numtasks"]) or 1,
                per_node=parse_gres(per_node_text),
                per_job=parse_gres(f["tres-per-job"]),
                per_task=parse_gres(f["tres-per-task"]),
            )
        )
    return entries


# -- sacct -P --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcctEntry:
    job_id: str
    state: str
    exit_code: str
    reason: str | None
    start: str | None
    end: str | None
    name: str


def parse_sacct(data: bytes | str) -> list[AcctEntry]:
    """Lines of `sacct -P -n -X -o SACCT_FIELDS` (the job name last: it may contain `|`)."""
    entries = []
    for line in decode(data).splitlines():
        parts = line.split("|", 6)
        if len(parts) < 7:
            continue
        job_id, state, exit_code, reason, start, end, name = parts
        entries.append(
            AcctEntry(
                job_id.strip(),
                state.strip(),
                exit_code.strip(),
                _null(reason),
                _null(start),
                _null(end),
                name,
            )
        )
    return entries


# -- scontrol show job / sbatch ------------------------------------------------------------------------


def parse_scontrol_job(data: bytes | str) -> dict[str, str]:
    """`scontrol show job ID` as a dict (JobState, ExitCode, Reason, StdOut, ...); {} when unknown."""
    records = split_records(decode(data), "JobId")
    if not records:
        return {}
    kv = parse_key_values(records[0])
    name_match = re.search(r"JobName=(.*)$", records[0].splitlines()[0])
    if name_match:
        kv["JobName"] = name_match.group(1)
    return kv


def parse_sbatch_parsable(data: bytes | str) -> str:
    """`sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`; raises ValueError on anything else."""
    text = decode(data).strip().splitlines()
    line = text[-1].strip() if text else ""
    job_id = line.split(";", 1)[0]
    if not job_id.isdigit():
        raise ValueError(f"sbatch printed no job id: {decode(data).strip()!r}")
    return job_id


def parse_version(data: bytes | str) -> str:
    """`slurm 22.05.8` -> `22.05.8`."""
    text = decode(data).strip()
    return text.split()[-1] if text else ""
