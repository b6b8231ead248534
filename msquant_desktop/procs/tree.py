"""Process trees and marker scans, read from /proc.

Children come from the kernel's per-thread lists (/proc/PID/task/TID/children), so walking a job's
tree costs a few reads per process instead of a scan of every process on the machine (psutil's
`children(recursive=True)` reads all of /proc each time: ~20 ms here, too slow for the supervisor's
10 ms stop loop).  A kernel built without those lists falls back to one scan of parent pids.
Standard library only: the supervisor imports this on its start path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from msquant_desktop.domain.markers import RUN_DIR_ENV
from msquant_desktop.procs.identity import PROC, environ_value, stat_facts

if TYPE_CHECKING:
    from collections.abc import Iterable

_children_lists: bool | None = None
"""Whether this kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN); known on first use."""


def _has_children_lists() -> bool:
    global _children_lists
    if _children_lists is None:
        pid = os.getpid()
        _children_lists = os.path.exists(f"{PROC}/{pid}/task/{pid}/children")
    return _children_lists


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir(PROC) if name.isdigit()]


def _parent_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for pid in _all_pids():
        facts = stat_facts(pid)
        if facts is not None:
            kids.setdefault(facts[1], []).append(pid)
    return kids


def children(pid: int) -> list[int]:
    """Direct children of `pid` (of all its threads), zombies included."""
    if not _has_children_lists():
        return _parent_map().get(pid, [])
    kids: list[int] = []
    try:
        tasks = os.listdir(f"{PROC}/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"{PROC}/{pid}/task/{tid}/children", "rb") as fh:
                text = fh.read()
        except OSError:
            continue
        kids.extend(int(p) for p in text.split())
    return kids


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before their children (zombies included).

    For a child subreaper (our supervisor) this includes `setsid` escapees whose parent died: the
    kernel re-parents them to the subreaper, not to init.
    """
    parents = None if _has_children_lists() else _parent_map()
    found: list[int] = []
    seen = {pid}
    stack = [pid]
    while stack:
        top = stack.pop()
        for child in children(top) if parents is None else parents.get(top, ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                stack.append(child)
    return found


def pids_with_marker(run_dir: str, exclude: Iterable[int] = ()) -> list[int]:
    """Live processes (readable to us) whose environment carries this run folder in MSQUANT_RUN_DIR."""
    skip = set(exclude)
    found: list[int] = []
    for pid in _all_pids():
        if pid in skip or environ_value(pid, RUN_DIR_ENV) != run_dir:
            continue
        facts = stat_facts(pid)
        if facts is not None and facts[0] not in "ZX":
            found.append(pid)
    return found
