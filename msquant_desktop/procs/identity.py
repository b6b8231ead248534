"""Who a process is: start time, state, parent, user and our markers, read from /proc.

**Start time** everywhere in this program is *seconds after boot*: field 22 of /proc/PID/stat (clock
ticks) divided by SC_CLK_TCK.  It is exact to the tick and does not move when the wall clock is set.
An epoch start time (what psutil's `create_time()` gives) is boot time + this value, and the kernel's
boot time (/proc/stat `btime`) shifts whenever the clock is stepped (NTP after boot, a resumed VM);
psutil also caches it per process, so the app, the supervisor and the CLI could each compute a
different epoch start time for the same process and a live job would look dead.  The store's
`jobs.pid_start_time` and `supervisor.json` have always held seconds after boot; `normalize_start_time`
still accepts an epoch value (anything from ~2001 on: no machine has been up for 31 years) and converts
it with the boot time, so a value from another tool cannot be mistaken for a different process.

Standard library only, no dataclasses or pathlib: the supervisor imports this on its start path.
"""

from __future__ import annotations

import os

from msquant_desktop.domain.markers import RUN_DIR_ENV

PROC = "/proc"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIME_TOLERANCE_S = 0.05
"""Two start times closer than this are the same process (ticks are 0.01 s; floats round)."""
EPOCH_THRESHOLD_S = 1e9
"""A start time at or above this is an epoch time (September 2001), not seconds after boot."""

_GONE_STATES = frozenset("ZX")


def stat_facts(pid: int) -> tuple[str, int, float] | None:
    """(state letter, parent pid, start time after boot) from one read of /proc/PID/stat; None: gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0].decode("ascii", "replace"), int(fields[1]), int(fields[19]) / CLK_TCK


def start_time(pid: int) -> float | None:
    """Seconds after boot when `pid` started; None when it is gone."""
    facts = stat_facts(pid)
    return None if facts is None else facts[2]


def state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, T, Z, ...); None when it is gone."""
    facts = stat_facts(pid)
    return None if facts is None else facts[0]


def parent(pid: int) -> int | None:
    facts = stat_facts(pid)
    return None if facts is None else facts[1]


def is_zombie(pid: int) -> bool:
    """True for a process that has ended but is not reaped yet (it counts as gone everywhere)."""
    facts = stat_facts(pid)
    return facts is not None and facts[0] in _GONE_STATES


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    facts = stat_facts(pid)
    return facts is not None and facts[0] not in _GONE_STATES


def is_live_state(letter: str) -> bool:
    return letter not in _GONE_STATES


def boot_time() -> float:
    """The epoch time of boot as the kernel tells it now (/proc/stat `btime`; moves when the clock is set)."""
    with open(f"{PROC}/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def to_epoch(after_boot: float) -> float:
    """A start time in seconds after boot as an epoch time (for display)."""
    return boot_time() + after_boot


def normalize_start_time(value: float | None) -> float | None:
    """A stored start time in seconds after boot; an epoch value is converted with the boot time."""
    if value is None or value < EPOCH_THRESHOLD_S:
        return value
    return value - boot_time()


def same_start(actual: float | None, expected: float | None) -> bool:
    """Do two start times (after boot, or an epoch `expected`) name the same process?"""
    expected = normalize_start_time(expected)
    return actual is not None and expected is not None and abs(actual - expected) <= START_TIME_TOLERANCE_S


def real_uid(pid: int) -> int | None:
    """The real user id of `pid` (the `Uid:` line of /proc/PID/status); None when it is gone."""
    try:
        with open(f"{PROC}/{pid}/status", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    start = raw.find(b"\nUid:")
    if start < 0:
        return None
    fields = raw[start + 5 : raw.find(b"\n", start + 1)].split()
    return int(fields[0]) if fields else None


def environ_values(pid: int, keys: tuple[str, ...]) -> dict[str, str] | None:
    """Those of `keys` present in the environment `pid` was started with.

    None when the environment cannot be read: gone, or another user's process (the kernel shows it
    only to the same user or root).
    """
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    wanted = {key.encode(): key for key in keys}
    found: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key in wanted:
            found[wanted[key]] = value.decode("utf-8", "replace")
    return found


def environ_value(pid: int, key: str) -> str | None:
    """The value of `key` in the environment `pid` was started with (None: unreadable or absent)."""
    values = environ_values(pid, (key,))
    return None if values is None else values.get(key)


def run_dir_marker(pid: int) -> str | None:
    """The job run folder `pid` carries in MSQUANT_RUN_DIR (domain/markers.py), or None."""
    return environ_value(pid, RUN_DIR_ENV)


def is_same_process(pid: int | None, expected_start: float | None, run_dir: str) -> bool:
    """Is `pid` still the process we started for the job with this run folder?

    Never decided by the pid alone: it must be alive (not a zombie), its start time must match
    `expected_start` (pids are reused) and it must carry the job's run-folder marker.
    """
    if pid is None or pid <= 0:
        return False
    facts = stat_facts(pid)
    if facts is None or facts[0] in _GONE_STATES or not same_start(facts[2], expected_start):
        return False
    return run_dir_marker(pid) == run_dir


def ancestors(pid: int | None = None) -> list[int]:
    """The parent, grandparent, ... of `pid` (default: this process), nearest first, up to pid 1."""
    found: list[int] = []
    current = os.getpid() if pid is None else pid
    while current > 1:
        up = parent(current)
        if up is None or up in found or up <= 0:
            break
        found.append(up)
        current = up
    return found
