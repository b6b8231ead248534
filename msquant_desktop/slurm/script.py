"""Render the sbatch script of a submission from the shipped Jinja2 template (or a cluster's own).

Everything that reaches the shell is `shlex.quote`d here; the template only places words.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission

LOG_NAME = "slurm.log"
MARKER_NAME = "msquant-exit"
SCRIPT_NAME = "job.sbatch"
REPO_DIR_NAME = "repo"

_NAME_OK = re.compile(r"^[A-Za-z0-9._+-]+$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")


class ScriptError(ValueError):
    """A submission that cannot be rendered safely; the message names the field."""


@dataclass(frozen=True)
class RemotePaths:
    """Where a run lives on the cluster: `<workspace>/<run id>/` with the clone in `repo/`."""

    run_dir: str

    @property
    def script(self) -> str:
        return f"{self.run_dir}/{SCRIPT_NAME}"

    @property
    def log(self) -> str:
        return f"{self.run_dir}/{LOG_NAME}"

    @property
    def marker(self) -> str:
        return f"{self.run_dir}/{MARKER_NAME}"

    @property
    def repo(self) -> str:
        return f"{self.run_dir}/{REPO_DIR_NAME}"


def remote_paths(workspace: str, run_id: str) -> RemotePaths:
    return RemotePaths(f"{workspace.rstrip('/')}/{run_id}")


def command_line(submission: SlurmSubmission) -> str:
    """The command and each Hydra override as separately quoted words: they arrive verbatim."""
    return shlex.join([*submission.command, *submission.overrides])


def gres_for(submission: SlurmSubmission) -> str | None:
    if submission.gpus <= 0:
        return None
    return f"gpu:{submission.gpu_type}:{submission.gpus}" if submission.gpu_type else f"gpu:{submission.gpus}"


def validate(submission: SlurmSubmission, profile: ClusterProfile) -> None:
    """Refuse what would be unsafe in an #SBATCH line or is outside the profile's allowances."""
    if not submission.command:
        raise ScriptError("command: a job needs a command to run")
    if not _NAME_OK.match(submission.job_name):
        raise ScriptError(f"job_name {submission.job_name!r}: use letters, digits and . _ + - only")
    if not _COMMIT.match(submission.commit):
        raise ScriptError(f"commit {submission.commit!r} is not a commit hash")
    if not submission.repo_url.strip():
        raise ScriptError("repo_url: the repository to clone is missing")
    if submission.partition is not None and not _NAME_OK.match(submission.partition):
        raise ScriptError(f"partition {submission.partition!r} is not a partition name")
    if profile.allowed_partitions and submission.partition not in profile.allowed_partitions:
        raise ScriptError(
            f"partition {submission.partition!r} is not allowed on {profile.name} "
            f"(allowed: {', '.join(profile.allowed_partitions)})"
        )
    if submission.gpu_type is not None and not _NAME_OK.match(submission.gpu_type):
        raise ScriptError(f"gpu_type {submission.gpu_type!r} is not a GPU type name")
    if submission.gpus and profile.allowed_gpu_types and submission.gpu_type not in profile.allowed_gpu_types:
        raise ScriptError(
            f"gpu_type {submission.gpu_type!r} is not allowed on {profile.name} "
            f"(allowed: {', '.join(profile.allowed_gpu_types)})"
        )
    if submission.gpus < 0 or submission.cpus < 1:
        raise ScriptError("gpus must be >= 0 and cpus >= 1")
    if submission.memory is not None and not _MEMORY.match(submission.memory):
        raise ScriptError(f"memory {submission.memory!r}: use a number with an optional K/M/G/T unit")
    if submission.time_limit is not None and not _TIME.match(submission.time_limit):
        raise ScriptError(f"time_limit {submission.time_limit!r}: use minutes, HH:MM:SS or D-HH:MM:SS")
    for key, _ in submission.extra_env:
        if not _ENV_KEY.match(key):
            raise ScriptError(f"extra_env: {key!r} is not a valid environment variable name")


def _environment(template_text: str | None) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    if template_text is None:
        template_text = (
            resources.files("msquant_desktop").joinpath("assets/templates/sbatch.sh.j2").read_text("utf-8")
        )
    return env.from_string(template_text)


def render_script(
    submission: SlurmSubmission, profile: ClusterProfile, run_id: str, slurm_name: str, workspace: str
) -> str:
    """The sbatch script text.  `workspace` is the remote workspace with `~`/variables expanded."""
    validate(submission, profile)
    paths = remote_paths(workspace, run_id)
    if re.search(r"\s", paths.run_dir):
        raise ScriptError(f"workspace {workspace!r}: #SBATCH paths cannot contain spaces")
    template_text = None
    if profile.sbatch_template:
        template_text = Path(profile.sbatch_template).expanduser().read_text(encoding="utf-8")
    return _environment(template_text).render(
        run_id=run_id,
        run_id_q=shlex.quote(run_id),
        slurm_name=slurm_name,
        log_path=paths.log,
        run_dir=paths.run_dir,
        partition=submission.partition,
        gres=gres_for(submission),
        cpus=submission.cpus,
        memory=submission.memory,
        time_limit=submission.time_limit,
        marker_path_q=shlex.quote(paths.marker),
        env=[(k, shlex.quote(v)) for k, v in submission.extra_env],
        repo_url_q=shlex.quote(submission.repo_url),
        repo_dir_q=shlex.quote(paths.repo),
        commit=submission.commit,
        commit_q=shlex.quote(submission.commit),
        preamble=profile.preamble.strip(),
        command_line=command_line(submission),
    )
