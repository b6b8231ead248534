"""The sbatch options a user may add: account, QoS, constraint and extra `#SBATCH --opt[=value]` lines.

One owner for what such a value or line may be: the cluster profile loader, the script renderer
(slurm/script.py) and the audit of an edited preview all call these checks.  Every check is a
full-string match (`re.match(...$)` also accepts a trailing newline, and a newline on an #SBATCH line
ends the directive: the rest of the header would be lost or become a command).
"""

from __future__ import annotations

import re


class OptionError(ValueError):
    """An sbatch option value or line we will not write; the message is one line naming the reason."""


# The long options of sbatch(1) as listed by Slurm 22.05.8's man page (Debian 12 slurm-client) and
# https://slurm.schedmd.com/sbatch.html (newer: --container-id, --extra, --oom-kill-step, --segment,
# --spread-segments, --tres-bind, --tres-per-task).  sbatch takes any unambiguous prefix of these
# (getopt_long), so a name must be written in full: `--out=x` would be `--output=x`.
KNOWN_OPTIONS = frozenset(
    """account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment constraint
    container container-id contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task
    deadline delay-boot dependency distribution error exclude exclusive export export-file extra
    extra-node-info get-user-env gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task
    gres gres-flags help hint hold ignore-pbs input job-name kill-on-invalid-dep licenses mail-type
    mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus network nice no-kill no-requeue
    nodefile nodelist nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket
    oom-kill-step open-mode output overcommit oversubscribe parsable partition power prefer priority
    profile propagate qos quiet reboot requeue reservation segment signal sockets-per-node spread-job
    spread-segments switches test-only thread-spec threads-per-core time time-min tmp tres-bind
    tres-per-task uid usage use-min-nodes verbose version wait wait-all-nodes wckey wrap""".split()
)

SET_BY_APP = {
    "job-name": "the app names each job uniquely to find it again",
    "output": "the app reads the job's log at the path it sets",
    "error": "the app reads stdout and stderr as one log (--output)",
    "input": "the job's stdin is set by the app",
    "chdir": "the job runs in its own run folder",
    "array": "use the Array field",
    "signal": "set from the cluster profile's signal_lead_s (--signal=B:USR1@N)",
}
"""Options the rendered script sets itself: an extra line may not set them again."""

FIELD_OPTIONS = {
    "partition": "Partition",
    "gres": "GPU type / GPUs",
    "cpus-per-task": "CPUs",
    "mem": "Memory",
    "time": "Time limit",
    "account": "Account",
    "qos": "QoS",
    "constraint": "Constraint",
}
"""Options with a field of their own (checked against the profile there): not as extra lines."""

BREAKS_TRACKING = {
    "parsable": "it changes sbatch's answer, which the app reads",
    "quiet": "it changes sbatch's answer, which the app reads",
    "verbose": "it changes sbatch's answer, which the app reads",
    "wrap": "the app sends a script, not a wrapped command",
    "test-only": "nothing would be submitted",
    "wait": "sbatch would not answer until the job ends",
    "clusters": "the app follows the job on the profile's own cluster",
    "uid": "the job runs as the SSH user",
    "gid": "the job runs as the SSH user",
    "help": "not an option for a job",
    "usage": "not an option for a job",
    "version": "not an option for a job",
}

_NAME_LIKE = re.compile(r"[A-Za-z0-9._-]+")
"""An account or QoS name (sacctmgr names: letters, digits, `.`, `_`, `-`)."""
_CONSTRAINT = re.compile(r"[A-Za-z0-9._+:&|,*\[\]()-]+")
"""Node features with sbatch's operators (`&`, `|`, `,`, `[...]`, `*count`, `(...)`): `a100&ib`,
`[rack1*2&rack2*4]`; no space, quote, `#`, `%` or `$` (sbatch reads those on a directive line)."""
_VALUE = re.compile(r"[A-Za-z0-9._/+~@=:,&|*\[\]()-]+")
"""What an extra line's value may hold: `END,FAIL`, `me@uni.edu`, `node[01-04]`, `now+1hour`,
`afterok:123`, `ALL,FOO=1`.  Quotes, backslashes, `#`, `%`, `$` and spaces are refused."""
_LINE = re.compile(r"#SBATCH --([a-z][a-z0-9-]*)(?:=(.*))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
SIGNAL_LEAD_MAX = 65535
"""sbatch: "sig_time must have an integer value between 0 and 65535"."""


def check_name_value(field: str, value: str) -> str:
    """An account or QoS name, or OptionError."""
    if not _NAME_LIKE.fullmatch(value):
        raise OptionError(f"{field} {value!r}: use letters, digits and . _ - only")
    return value


def check_constraint(value: str) -> str:
    if not _CONSTRAINT.fullmatch(value):
        raise OptionError(
            f"constraint {value!r}: use feature names joined by & | , with [ ] ( ) and *count "
            "(no spaces or quotes)"
        )
    return value


def check_signal_lead(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SIGNAL_LEAD_MAX:
        raise OptionError(
            f"signal_lead_s must be a whole number of seconds 0-{SIGNAL_LEAD_MAX}, got {value!r}"
        )
    return value


def time_limit_seconds(text: str | None) -> int | None:
    """sbatch's --time in seconds: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
    `days-hours:minutes`, `days-hours:minutes:seconds` (sbatch(1)); None when absent or unreadable."""
    if not text:
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if match is None:
        return None
    days, first, second, third = (int(g) if g is not None else None for g in match.groups())
    assert first is not None
    if days is not None:  # days-hours[:minutes[:seconds]]
        return ((days * 24 + first) * 60 + (second or 0)) * 60 + (third or 0)
    if third is not None:  # hours:minutes:seconds
        return (first * 60 + (second or 0)) * 60 + third
    return first * 60 + (second or 0)  # minutes[:seconds]


def signal_directive(lead_s: int, time_limit: str | None = None) -> str | None:
    """The batch shell (`B:`) hears SIGUSR1 `lead_s` seconds before the time limit (Slurm may send it
    up to 60 s earlier); None when the lead is 0.  A lead as long as the job's own limit would signal
    it at its start, so it is at most half the limit when the limit is known."""
    limit = time_limit_seconds(time_limit)
    if limit is not None:
        lead_s = min(lead_s, limit // 2)
    return f"#SBATCH --signal=B:USR1@{lead_s}" if lead_s else None


def parse_directive(line: object) -> tuple[str, str | None]:
    """(option name, value or None) of a `#SBATCH --opt[=value]` line (`--opt[=value]` alone is read
    the same); OptionError for any other shape, an unknown or abbreviated option or an unsafe value."""
    if not isinstance(line, str):
        raise OptionError(f"sbatch line {line!r}: expected text")
    if _CONTROL.search(line):
        raise OptionError(f"sbatch line {line!r}: must be one line without control characters")
    text = line.strip()
    if text.startswith("--"):
        text = f"#SBATCH {text}"
    match = _LINE.fullmatch(text)
    if match is None:
        if re.fullmatch(r"#SBATCH\s+-[A-Za-z].*", text):
            raise OptionError(f"sbatch line {line!r}: write the long form (#SBATCH --name=value)")
        raise OptionError(f"sbatch line {line!r}: write it as #SBATCH --name or #SBATCH --name=value")
    name, value = match.group(1), match.group(2)
    if name not in KNOWN_OPTIONS:
        raise OptionError(f"sbatch line {line!r}: --{name} is not an sbatch option (write the full name)")
    if value is not None and not _VALUE.fullmatch(value):
        raise OptionError(
            f"sbatch line {line!r}: the value may hold letters, digits and . _ / + ~ @ = : , & | * [ ] ( ) - "
            "only (no spaces, quotes, #, % or $)"
        )
    return name, value


def check_extra_line(line: object) -> str:
    """An extra line as it is written into the script (`#SBATCH --opt[=value]`), or OptionError with the
    reason: an option the app sets itself, one with its own field, or one that breaks tracking."""
    name, value = parse_directive(line)
    if name in SET_BY_APP:
        raise OptionError(f"sbatch line {line!r}: --{name} is set by the app ({SET_BY_APP[name]})")
    if name in FIELD_OPTIONS:
        raise OptionError(f"sbatch line {line!r}: use the {FIELD_OPTIONS[name]} field for --{name}")
    if name in BREAKS_TRACKING:
        raise OptionError(f"sbatch line {line!r}: --{name} is not allowed ({BREAKS_TRACKING[name]})")
    return f"#SBATCH --{name}" + (f"={value}" if value is not None else "")


def merged_lines(profile_lines: tuple[str, ...], submission_lines: tuple[str, ...]) -> list[str]:
    """The profile's extra lines, then the submission's; a submission line replaces the profile's line
    of the same option (sbatch would take the last, but the preview should not show both)."""
    checked = [check_extra_line(line) for line in (*profile_lines, *submission_lines)]
    by_option: dict[str, str] = {}
    for line in checked:
        name = parse_directive(line)[0]
        by_option.pop(name, None)
        by_option[name] = line
    return list(by_option.values())
