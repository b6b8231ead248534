"""The exit status a command gives for a job that ended: the contract scripts rely on.

`jobs wait`, `jobs run --wait`, `jobs logs --follow` and `slurm logs --follow` all exit with
`exit_status(state, exit_code, signal)`.  The numbers follow the shell's habits (sh, bash, GNU
timeout, pueue's `wait`), so a script can treat a job like a command it ran itself:

    COMPLETED          0
    FAILED             the job's own exit code (1 when it has none, e.g. a SLURM job without one)
    KILLED             128 + the signal number (137 for SIGKILL, 143 for SIGTERM), as sh reports it
    OUT_OF_MEMORY      137 (the kernel's OOM killer sends SIGKILL)
    TIMEOUT            124 (GNU timeout's code for "the time limit ended it")
    CANCELLED          125 (the user stopped it; no signal is reported, whatever the job got)
    LOST               126 (nobody knows how it ended: its supervisor or node vanished)
    NODE_FAIL          126
    FAILED_TO_START    127 (sh's "command could not be run")

A job's own exit code can be any of these numbers too: `--json` output says which state it was.
Standard library only; the README documents the same table.
"""

from __future__ import annotations

from msquant_desktop.domain.jobs import JobState

EXIT_CANCELLED = 125
EXIT_LOST = 126
EXIT_FAILED_TO_START = 127
EXIT_TIMEOUT = 124
SIGNAL_BASE = 128
_SIGKILL = 9

_FIXED: dict[JobState, int] = {
    JobState.COMPLETED: 0,
    JobState.CANCELLED: EXIT_CANCELLED,
    JobState.LOST: EXIT_LOST,
    JobState.NODE_FAIL: EXIT_LOST,
    JobState.FAILED_TO_START: EXIT_FAILED_TO_START,
    JobState.TIMEOUT: EXIT_TIMEOUT,
    JobState.OUT_OF_MEMORY: SIGNAL_BASE + _SIGKILL,
}


def exit_status(state: JobState, exit_code: int | None, signal: int | None) -> int | None:
    """The exit status for a job in `state`; None while it has not ended (no status yet).

    Always 0..255, so it can be returned from a process as it is.
    """
    if not state.is_final:
        return None
    if state in _FIXED:
        return _FIXED[state]
    if state is JobState.KILLED:
        return (
            SIGNAL_BASE + signal
            if signal is not None and 0 < signal < SIGNAL_BASE
            else SIGNAL_BASE + _SIGKILL
        )
    # FAILED: the job's own code, kept within what a process can return (and never 0: it failed).
    if exit_code is None or exit_code == 0:
        return 1
    return exit_code % 256 or 1
