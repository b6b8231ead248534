"""Projects: local git repositories jobs are launched from.  Standard library only.

Besides the stored `Project`, this module holds the pure rules of the launch form: what a Hydra
override must look like, which overrides a set of group choices produces, and the exact argv a launch
runs (the entry point split like a shell would, then each override as one argument, never through a
shell).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from msquant_desktop.domain.jobs import JobKind, JobSpec, JobTarget
from msquant_desktop.domain.markers import RUN_DIR_PLACEHOLDER
from msquant_desktop.domain.project_configs import (
    HydraLayout,
    PythonEnv,
    SweepMember,
    group_overrides,
    split_prefill,
    with_interpreter,
)
from msquant_desktop.domain.slurm import SlurmSubmission

__all__ = ["HydraLayout", "split_prefill"]  # re-exported: the form's pure rules live together

DEFAULT_ENTRY_POINT = "python train.py"

# Keys of Project.extra (a JSON object in the store) that the Projects area uses.
EXTRA_CONFIG_NAME = "config_name"
EXTRA_LAST_OVERRIDES = "last_overrides"
EXTRA_PYTHON = "python"  # the interpreter chosen in the project's settings
EXTRA_ENTRY_SCRIPT = "entry_script"  # the Hydra entry point chosen when there are several


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    path: str
    added_at: datetime
    config_dir: str | None = None
    entry_point: str = DEFAULT_ENTRY_POINT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_name(self) -> str | None:
        """The primary Hydra config the user chose (None: discovered)."""
        value = self.extra.get(EXTRA_CONFIG_NAME)
        return str(value) if value else None


@dataclass(frozen=True)
class RepoStatus:
    """What git already knows about a work tree (no network)."""

    root: str
    branch: str | None  # None: detached HEAD
    head_sha: str  # full SHA; "" in a repository without commits
    head_subject: str
    dirty_count: int  # changed, staged or untracked files
    upstream: str | None = None
    ahead: int | None = None  # None: no upstream
    behind: int | None = None
    remotes: tuple[tuple[str, str], ...] = ()  # (name, fetch URL)

    @property
    def short_sha(self) -> str:
        return self.head_sha[:8]

    def head_text(self) -> str:
        return f"{self.short_sha} {self.head_subject}" if self.head_sha else "no commits yet"

    def ahead_behind_text(self) -> str:
        if self.upstream is None:
            return "no upstream"
        return f"{self.ahead} ahead, {self.behind} behind {self.upstream}"


class OverrideError(ValueError):
    """An override line that is not of the form Hydra accepts; the message names the line."""


# key: dotted path, optionally a group with a package (`db@backup`), optionally prefixed by + ++ or ~.
_OVERRIDE_KEY = re.compile(r"^(\+\+|\+|~)?[A-Za-z_][\w\-]*(?:[./][\w\-]+)*(?:@[\w.\-]*)?$")


def validate_override(text: str) -> str:
    """Check one `key=value` override and return it unchanged.

    Only the shape is checked here (Hydra checks the meaning when it composes).  Overrides are passed
    as single argv elements, never through a shell, so characters such as `;` or `$` in a value arrive
    verbatim and are allowed.
    """
    if text != text.strip():
        raise OverrideError(f"override {text!r}: remove the spaces around it")
    if not text:
        raise OverrideError("an override cannot be empty")
    key, sep, _value = text.partition("=")
    if not sep and not key.startswith("~"):
        raise OverrideError(f"override {text!r} has no '=': write it as key=value")
    if not _OVERRIDE_KEY.fullmatch(key):
        raise OverrideError(
            f"override {text!r}: {key!r} is not a config key (letters, digits, _ and - joined by . or /, "
            "optionally prefixed by +, ++ or ~)"
        )
    return text


def parse_override_lines(text: str) -> list[str]:
    """The free `key=value` lines of the form: blank lines and `#` comments skipped, each validated."""
    overrides: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            overrides.append(validate_override(line))
        except OverrideError as exc:
            raise OverrideError(f"line {number}: {exc}") from None
    return overrides


def build_overrides(layout: HydraLayout | None, choices: Mapping[str, str], free_lines: str) -> list[str]:
    """All overrides of a launch: group pickers first, then the free lines (validated)."""
    return [*group_overrides(layout, choices), *parse_override_lines(free_lines)]


def split_entry_point(entry_point: str) -> list[str]:
    """The entry point split the way a POSIX shell would split it (quotes honoured, nothing expanded)."""
    try:
        words = shlex.split(entry_point)
    except ValueError as exc:
        raise OverrideError(f"entry point {entry_point!r}: {exc}") from None
    if not words:
        raise OverrideError("the entry point is empty: enter the command to run, e.g. python train.py")
    return words


MULTIRUN_FLAGS = ("-m", "--multirun")


def build_command(
    entry_point: str, overrides: Sequence[str], env: PythonEnv | None = None, multirun: bool = False
) -> tuple[str, ...]:
    """The exact argv a launch runs: the split entry point (a bare `python` replaced by the project's
    interpreter when `env` is given: local launches), `--multirun` when asked and not already there,
    then one argument per override."""
    words = with_interpreter(split_entry_point(entry_point), env)
    if multirun and not any(w in MULTIRUN_FLAGS for w in words):
        words.append("--multirun")
    return (*words, *(validate_override(o) for o in overrides))


def wants_multirun(entry_point: str) -> bool:
    """The entry point itself asks Hydra for a multirun (`-m` / `--multirun`)."""
    try:
        return any(w in MULTIRUN_FLAGS for w in shlex.split(entry_point))
    except ValueError:
        return False


def without_multirun(command: Sequence[str], overrides: Sequence[str]) -> tuple[str, ...]:
    """A sweep member's argv: the command's program part without -m/--multirun, then its overrides."""
    head = [w for w in command if w not in MULTIRUN_FLAGS]
    return (*head, *overrides)


def launch_warnings(status: RepoStatus, cluster: bool, pushed_commit: str | None) -> list[str]:
    """What the user should know before a launch from a tree in `status`."""
    warnings: list[str] = []
    if status.dirty_count:
        if cluster:
            warnings.append(
                f"{status.dirty_count} uncommitted file(s) are not part of the commit and will not reach "
                "the cluster."
            )
        else:
            warnings.append(
                f"{status.dirty_count} uncommitted file(s): the run uses commit {status.short_sha} "
                "plus a snapshot of them only if 'Include uncommitted changes' is ticked."
            )
    if cluster and status.head_sha and pushed_commit != status.head_sha:
        if pushed_commit:
            warnings.append(
                f"HEAD {status.short_sha} is not on any remote; the cluster runs the pushed commit "
                f"{pushed_commit[:8]} instead. Push to run HEAD."
            )
        else:
            warnings.append(f"No commit of HEAD {status.short_sha} is on a remote; push it first.")
    return warnings


# ------------------------------------------------------------------------------------------------
# A launch, fixed when the user clicks Launch
# ------------------------------------------------------------------------------------------------

PINNED_TREE_DEST = "{run_dir}/src"
"""Where the wrapper checks out the pinned commit: inside the job's own run folder."""


@dataclass(frozen=True)
class ClusterResources:
    """What a cluster launch asks SLURM for (checked against the cluster's profile when submitted)."""

    partition: str | None = None
    gpu_type: str | None = None
    gpus: int = 0
    cpus: int = 1
    memory: str | None = None  # e.g. "16G"
    time_limit: str | None = None  # e.g. "01:00:00"
    account: str | None = None  # None: the cluster profile's
    qos: str | None = None
    constraint: str | None = None
    sbatch_lines: tuple[str, ...] = ()  # extra `#SBATCH --opt[=value]` lines


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a launch runs, resolved before anything runs (commit, command, composed config)."""

    project_id: int
    project_name: str
    repo: str
    entry_point: str
    overrides: tuple[str, ...]
    command: tuple[str, ...]  # exactly what runs: split entry point + overrides
    commit: str  # full SHA: HEAD for Local, the newest pushed commit for Cluster
    commit_subject: str
    target: JobTarget
    composed_config: str | None = None  # YAML, None for a project without Hydra
    cluster: str | None = None
    repo_url: str | None = None
    dirty_count: int = 0
    warnings: tuple[str, ...] = ()
    resources: ClusterResources | None = None
    python: str | None = None  # the interpreter of a local launch (None: the command's own)
    env: tuple[tuple[str, str], ...] = ()  # the project environment's PATH / VIRTUAL_ENV for the job
    patch: str | None = None  # the snapshot of uncommitted changes the config was composed with
    members: tuple[SweepMember, ...] = ()  # a sweep: one job per member
    sweep_mode: str | None = None  # None, "members" or "multirun" (one job, Hydra's own sweeper)
    sweeper: str | None = None
    sweep_id: str | None = None
    sweep: dict[str, Any] | None = None  # a member's place in its sweep (stored as meta["sweep"])

    @property
    def is_sweep(self) -> bool:
        return self.sweep_mode is not None

    def job_name(self) -> str:
        name = f"{self.project_name} @ {self.commit[:8]}"
        if self.sweep and "index" in self.sweep:
            name += f" [{self.sweep['index'] + 1}/{self.sweep['size']}]"
        return name

    def meta(self, patch: str | None = None) -> dict[str, Any]:
        """What is stored with the job (shown in its details; read back by "Re-run with changes")."""
        meta: dict[str, Any] = {
            "command": list(self.command),
            "entry_point": self.entry_point,
            "overrides": list(self.overrides),
            "commit": self.commit,
            "commit_subject": self.commit_subject,
            "composed_config": self.composed_config,
            "repo": self.repo,
            "repo_url": self.repo_url,
            "patch": patch if patch is not None else self.patch,
            "python": self.python,
        }
        if self.sweep is not None:
            meta["sweep"] = dict(self.sweep)
        elif self.sweep_mode == "members" and self.members:
            # A sweep submitted whole (a cluster's job array): task i is member i.
            members = self.member_plans()
            meta["sweep"] = {**(members[0].sweep or {}), "mode": "array"}
            meta["sweep"].pop("index", None)
            meta["members"] = [
                {
                    "index": index,
                    "overrides": list(member.overrides),
                    "command": list(member.command),
                    "composed_config": member.composed_config,
                }
                for index, member in enumerate(members)
            ]
        return meta

    def member_plans(self) -> list[LaunchPlan]:
        """One plan per job to submit.

        A sweep of members gives one plan per member, each with its own overrides, command and
        composed config, and `sweep` = {id, index, size, overrides (the sweep as written), sweeper};
        a --multirun sweep is one job whose `sweep` has mode "multirun".
        """
        if self.sweep_mode == "multirun":
            info = {
                "id": self.sweep_id,
                "mode": "multirun",
                "sweeper": self.sweeper,
                "overrides": list(self.overrides),
            }
            return [replace(self, sweep=info)]
        if self.sweep_mode != "members" or not self.members:
            return [self]
        program = self.command[: len(self.command) - len(self.overrides)]
        size = len(self.members)
        return [
            replace(
                self,
                overrides=member.overrides,
                command=without_multirun(program, member.overrides),
                composed_config=member.composed_config,
                members=(),
                sweep_mode=None,
                sweep={
                    "id": self.sweep_id,
                    "index": index,
                    "size": size,
                    "mode": "members",
                    "sweeper": self.sweeper,
                    "overrides": list(self.overrides),
                },
            )
            for index, member in enumerate(self.members)
        ]


def local_job_spec(plan: LaunchPlan, wrapper: Sequence[str], patch: str | None = None) -> JobSpec:
    """The JobSpec of a local launch: the pinned-run wrapper around the exact command.

    `wrapper` is how this program invokes its `project-run` subcommand (runtime.self_command);
    `patch` defaults to the snapshot the plan's config was composed with.
    """
    patch = patch if patch is not None else plan.patch
    argv = [*wrapper, "--repo", plan.repo, "--commit", plan.commit, "--dest", PINNED_TREE_DEST]
    if patch:
        argv += ["--patch", patch]
    argv += ["--", *plan.command]
    return JobSpec(
        name=plan.job_name(),
        argv=tuple(argv),
        kind=JobKind.PROJECT,
        target=JobTarget.LOCAL,
        cwd=RUN_DIR_PLACEHOLDER,
        env=plan.env,
        project_id=plan.project_id,
        meta=plan.meta(patch),
    )


_NOT_IN_SLURM_NAMES = re.compile(r"[^A-Za-z0-9._+-]+")


def slurm_job_name(name: str) -> str:
    """A job name SLURM and our script accept (letters, digits, . _ + -): a project folder may be
    called "My Projekt ü" and still run on a cluster."""
    cleaned = _NOT_IN_SLURM_NAMES.sub("_", name.replace(" @ ", "-")).strip("_.")
    return cleaned[:64] or "job"


def slurm_submission(plan: LaunchPlan) -> SlurmSubmission:
    """The cluster submission of a launch, at the pushed commit; the overrides go as their own args."""
    if not plan.cluster:
        raise OverrideError("choose a cluster to launch on")
    if not plan.repo_url:
        raise OverrideError("the project has no remote, so a cluster cannot fetch its code")
    res = plan.resources or ClusterResources()
    command = tuple(split_entry_point(plan.entry_point))
    overrides = plan.overrides
    array = None
    task_overrides: tuple[tuple[str, ...], ...] = ()
    if plan.sweep_mode == "members" and plan.members:
        # One job array: task i runs member i's overrides (read from a file, see slurm.script).
        command = without_multirun(command, ())
        overrides = ()
        task_overrides = tuple(member.overrides for member in plan.members)
        array = f"0-{len(task_overrides) - 1}"
    elif plan.sweep_mode is not None:
        raise OverrideError(cluster_sweep_refusal(plan.sweeper))
    return SlurmSubmission(
        cluster=plan.cluster,
        job_name=slurm_job_name(plan.job_name()),
        repo_url=plan.repo_url,
        commit=plan.commit,
        command=command,
        overrides=overrides,
        array=array,
        task_overrides=task_overrides,
        partition=res.partition,
        gpu_type=res.gpu_type,
        gpus=res.gpus,
        cpus=res.cpus,
        memory=res.memory,
        time_limit=res.time_limit,
        project_id=plan.project_id,
        account=res.account,
        qos=res.qos,
        constraint=res.constraint,
        sbatch_lines=res.sbatch_lines,
    )


def cluster_sweep_refusal(sweeper: str | None) -> str:
    """Why a sweep driven by an optimizing sweeper (optuna, ax, nevergrad) does not go to a cluster:
    it picks each trial from the last ones, so its members are not known when the array is made."""
    name = (sweeper or "this sweeper").rsplit(".", 1)[-1]
    return (
        f"{name} picks each trial from the results of the last ones, so its trials cannot be submitted "
        "as a SLURM job array: launch it Local, or give the values as a grid (a=1,2) for Hydra's basic "
        "sweeper"
    )


LAUNCH_FACTS_FILE = "project-launch.json"
"""In a SLURM job's local run folder: the LaunchPlan's meta (composed config included), written at
submit, because the cluster service stores only the SlurmSubmission in the job's spec."""


def job_launch_facts(meta: Mapping[str, Any], saved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The launch facts of a project job, local or SLURM, in one shape (the keys of LaunchPlan.meta).

    Local jobs carry them in their meta; SLURM jobs carry a `submission` (and, when launched from the
    Projects tab, a `saved` copy of the plan's meta from LAUNCH_FACTS_FILE).
    """
    facts: dict[str, Any] = dict(saved or {})
    submission = meta.get("submission")
    if isinstance(submission, Mapping):
        command = [*submission.get("command", []), *submission.get("overrides", [])]
        facts.setdefault("command", command)
        facts.setdefault("entry_point", shlex.join(submission.get("command", [])))
        facts.setdefault("overrides", list(submission.get("overrides", [])))
        facts.setdefault("commit", submission.get("commit", ""))
        facts.setdefault("repo_url", submission.get("repo_url"))
    for key, value in meta.items():
        if key != "submission":
            facts.setdefault(key, value)
    return facts


def preferred_remote_url(status: RepoStatus) -> str | None:
    """The URL a cluster clones from: the upstream's remote, else origin, else the first remote."""
    urls = dict(status.remotes)
    if status.upstream and "/" in status.upstream:
        name = status.upstream.split("/", 1)[0]
        if name in urls:
            return urls[name]
    return urls.get("origin") or (status.remotes[0][1] if status.remotes else None)
