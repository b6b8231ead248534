"""Ending processes: the program's one stop routine — TERM, a grace period, KILL until all are gone.

Used for a job's tree by its supervisor (stepped from its select loop, so output keeps flowing while
the tree shuts down), for the processes carrying a job's run-folder marker when its supervisor is gone
(app, `jobs cancel`, re-adoption, the supervisor's last sweep) and for the doctor's clean-up of a tree.

Every process is pinned to its start time when first seen and signalled only while it still has it
(through a pidfd where the kernel offers them, so a pid recycled between the check and the signal is
never hit).  Always refused: this program and its ancestors, pids 0 and 1, other users' processes and
a pid whose start time is not the one expected.  A zombie counts as gone.

Standard library only (logging is imported only when there is something to log): the supervisor
imports this.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

from msquant_desktop.procs.identity import ancestors, real_uid, same_start, stat_facts
from msquant_desktop.procs.tree import descendants, pids_with_marker

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

REFUSED_SELF = "refused: this program or one of its parents"
ALREADY_GONE = "already gone"
RECYCLED = "pid now belongs to another process; left alone"
OTHER_USER = "belongs to another user; left alone"

KILL_WAIT_S = 5.0
"""How long a blocking stop waits for SIGKILLed processes to disappear (uninterruptible sleep)."""

_use_pidfd = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def protected_pids() -> set[int]:
    """Pids a stop never signals: 0, 1, this process and its ancestors."""
    return {0, 1, os.getpid(), *ancestors()}


def send_signal(pid: int, start: float, sig: int) -> bool:
    """Send `sig` to `pid` only if it is still the process that started at `start` (after boot).

    False when it is gone, recycled or not ours to signal.  With a pidfd the check and the signal
    name the same process even if the pid is reused in between.
    """
    global _use_pidfd
    fd = -1
    if _use_pidfd:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        except OSError:  # ENOSYS / EPERM in some sandboxes: check, then a plain kill
            _use_pidfd = False
    try:
        facts = stat_facts(pid)
        if facts is None or not same_start(facts[2], start):
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if fd >= 0:
            os.close(fd)


class StopResult:
    """What a stop did.  A plain class, not a dataclass: the supervisor imports this module."""

    __slots__ = ("ended", "killed", "refused", "skipped", "survivors", "targets")

    def __init__(
        self,
        targets: tuple[int, ...] = (),
        ended: tuple[int, ...] = (),
        killed: tuple[int, ...] = (),
        survivors: tuple[int, ...] = (),
        refused: dict[int, str] | None = None,
        skipped: str = "",
    ) -> None:
        self.targets = targets
        """Every process the stop took on (and signalled unless it ended first), sorted."""
        self.ended = ended
        """Of the targets, those gone now (exited, zombie, or their pid reused)."""
        self.killed = killed
        """Of the ended, those that needed SIGKILL."""
        self.survivors = survivors
        """Targets still alive when the stop stopped looking."""
        self.refused = refused or {}
        """pid -> why it was left alone (this program, another user's, recycled)."""
        self.skipped = skipped
        """Why nothing at all was done (`stop_tree`'s root: refused, recycled, already gone), else ""."""

    def __repr__(self) -> str:
        return (
            f"StopResult(targets={self.targets}, ended={self.ended}, killed={self.killed}, "
            f"survivors={self.survivors}, refused={self.refused}, skipped={self.skipped!r})"
        )


class Stop:
    """One stop of a set of processes: TERM now, KILL when `grace_s` is over, until every one is gone.

    `members()` names the set as it is now and is asked on every step, so a process forked during
    the grace period is caught (it gets TERM too, or KILL once the grace is over).  A process once
    taken on stays a target until it is gone, even when `members()` no longer lists it (a tree whose
    root died re-parents the rest).  `expected` pins start times known in advance (pid -> seconds
    after boot); a pid that does not match is refused as recycled.  `group` is a process group that
    gets each TERM/KILL too (the supervisor's job group: one call reaches most of it); set it to None
    once its leader has been reaped, so a reused group id is never signalled.

    Drive it with `step()` from an event loop, or block in `wait()`.  `grace_s <= 0`: KILL at once.
    """

    def __init__(
        self,
        members: Callable[[], Iterable[int]],
        grace_s: float,
        *,
        expected: dict[int, float | None] | None = None,
        group: int | None = None,
        uid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_s = grace_s
        self.group = group
        self.refused: dict[int, str] = {}
        self._members = members
        self._expected = dict(expected or {})
        self._uid = os.getuid() if uid is None else uid
        self._protected = protected_pids()
        self._clock = clock
        self._started_at: float | None = None
        self._killing_since: float | None = None
        self._group_termed = False
        self._known: dict[int, float] = {}  # every target: pid -> start time after boot
        self._live: set[int] = set()
        self._ended: set[int] = set()
        self._got_kill: set[int] = set()

    @property
    def alive(self) -> list[int]:
        """Targets not known to be gone (as of the last step)."""
        return sorted(self._live)

    @property
    def killing(self) -> bool:
        """The grace period is over: SIGKILL on every step."""
        return self._killing_since is not None

    def step(self) -> bool:
        """One round: note who is gone, take on newcomers, signal.  True when nothing is left alive."""
        now = self._clock()
        if self._started_at is None:
            self._started_at = now
        if self._killing_since is None and (self.grace_s <= 0 or now - self._started_at >= self.grace_s):
            self._killing_since = now
        self._note_ended()
        newcomers = self._take_on_newcomers()
        done = not self._live
        if self._killing_since is not None:
            self._signal_group(signal.SIGKILL)
            for pid in sorted(self._live):
                if send_signal(pid, self._known[pid], signal.SIGKILL):
                    self._got_kill.add(pid)
        else:
            if not self._group_termed:
                self._group_termed = True
                self._signal_group(signal.SIGTERM)
            for pid in newcomers:
                send_signal(pid, self._known[pid], signal.SIGTERM)
        return done

    def wait(self, kill_wait_s: float = KILL_WAIT_S, poll_s: float = 0.005) -> StopResult:
        """Step until everything is gone, or `kill_wait_s` after the first SIGKILL; the result."""
        delay = poll_s
        while not self.step():
            now = self._clock()
            if self._killing_since is not None:
                if now - self._killing_since >= kill_wait_s:
                    break
                pause = min(delay, self._killing_since + kill_wait_s - now)
            else:
                assert self._started_at is not None
                pause = min(delay, self._started_at + self.grace_s - now)
            time.sleep(max(pause, 0.001))
            delay = min(delay * 2, 0.1)
        result = self.result()
        if result.survivors and kill_wait_s > 0:
            import logging

            logging.getLogger(__name__).warning(
                "pids %s survived SIGKILL (uninterruptible sleep?)", list(result.survivors)
            )
        return result

    def result(self) -> StopResult:
        self._note_ended()
        ended = tuple(sorted(self._ended))
        return StopResult(
            targets=tuple(sorted(self._known)),
            ended=ended,
            killed=tuple(p for p in ended if p in self._got_kill),
            survivors=tuple(sorted(self._live)),
            refused=dict(self.refused),
        )

    # -- inside ---------------------------------------------------------------------------------------
    def _note_ended(self) -> None:
        for pid in list(self._live):
            facts = stat_facts(pid)
            if facts is None or facts[0] in "ZX" or not same_start(facts[2], self._known[pid]):
                self._live.discard(pid)
                self._ended.add(pid)

    def _take_on_newcomers(self) -> list[int]:
        newcomers: list[int] = []
        for pid in self._members():
            if pid in self._live or pid in self.refused:
                continue
            facts = stat_facts(pid)
            if facts is None or facts[0] in "ZX":
                continue  # gone already (a zombie waiting for its parent counts as gone)
            if pid in self._known and same_start(facts[2], self._known[pid]):
                continue  # ended earlier and still listed
            reason = self._refusal(pid, facts[2])
            if reason:
                self.refused[pid] = reason
                continue
            self._known[pid] = facts[2]
            self._live.add(pid)
            self._ended.discard(pid)
            newcomers.append(pid)
        return newcomers

    def _refusal(self, pid: int, start: float) -> str:
        if pid in self._protected:
            return REFUSED_SELF
        expected = self._expected.get(pid)
        if expected is not None and not same_start(start, expected):
            return RECYCLED
        if real_uid(pid) != self._uid:
            return OTHER_USER
        return ""

    def _signal_group(self, sig: int) -> None:
        if self.group is not None and self.group > 1:
            try:
                os.killpg(self.group, sig)
            except (ProcessLookupError, PermissionError):
                pass


def stop_tree(
    pid: int,
    start_time: float | None,
    grace_s: float = 5.0,
    *,
    uid: int | None = None,
    kill_wait_s: float = KILL_WAIT_S,
) -> StopResult:
    """TERM `pid` and all its descendants, wait up to `grace_s`, KILL whoever is left (blocking).

    `start_time` (after boot; None: whatever runs as `pid` now) guards against a recycled pid.  Only
    processes of user `uid` (default: ours) are touched.  `skipped` says why nothing was done.
    """
    uid = os.getuid() if uid is None else uid
    if pid in protected_pids():
        return StopResult(skipped=REFUSED_SELF)
    facts = stat_facts(pid)
    if facts is None or facts[0] in "ZX":
        return StopResult(skipped=ALREADY_GONE)
    if start_time is not None and not same_start(facts[2], start_time):
        return StopResult(skipped=RECYCLED)
    if real_uid(pid) != uid:
        return StopResult(skipped=OTHER_USER)
    root_start = facts[2]

    def tree() -> list[int]:
        now = stat_facts(pid)
        if now is None or now[0] in "ZX" or not same_start(now[2], root_start):
            return []  # the root is gone; its former descendants stay targets
        return [pid, *descendants(pid)]

    result = Stop(tree, grace_s, expected={pid: root_start}, uid=uid).wait(kill_wait_s)
    import logging

    logging.getLogger(__name__).info(
        "ended process tree of pid %d: %s (SIGKILL: %s)", pid, result.ended, result.killed
    )
    return result


def stop_marked(
    run_dir: str, grace_s: float, *, exclude: Iterable[int] = (), kill_wait_s: float = KILL_WAIT_S
) -> StopResult:
    """Stop every process carrying this run folder in MSQUANT_RUN_DIR (the job's own processes).

    Blocks for up to `grace_s` + `kill_wait_s`; `grace_s=0, kill_wait_s=0` SIGKILLs at once and returns.
    """
    excluded = frozenset(exclude)
    return Stop(lambda: pids_with_marker(run_dir, excluded), grace_s).wait(kill_wait_s)


def stop_processes(
    identities: Iterable[tuple[int, float | None]], grace_s: float, *, kill_wait_s: float = KILL_WAIT_S
) -> StopResult:
    """Stop a set of identified processes: (pid, start time after boot, or None for "as it is now")."""
    expected = dict(identities)
    return Stop(lambda: list(expected), grace_s, expected=expected).wait(kill_wait_s)
