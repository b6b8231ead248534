"""Render the sbatch script of a submission from the shipped Jinja2 template (or a cluster's own).

Everything that reaches the shell is `shlex.quote`d here; the template only places words.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.slurm import sbatch_options
from msquant_desktop.slurm.parsers import array_task_ids
from msquant_desktop.slurm.sbatch_options import OptionError

LOG_NAME = "slurm.log"
MARKER_NAME = "msquant-exit"
SCRIPT_NAME = "job.sbatch"
REPO_DIR_NAME = "repo"
TASK_ARGS_NAME = "task-args"

# Every check is a full-string match: `re.match(...$)` also accepts a trailing newline, and a newline
# in a value placed on an #SBATCH line ends that line (the rest of the header is silently lost).
_NAME_OK = re.compile(r"[A-Za-z0-9._+-]+")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
_TIME = re.compile(r"(\d+-)?\d+(:\d{1,2}){0,2}")
_MEMORY = re.compile(r"\d+[KMGT]?")
_ARRAY_ITEM = r"\d+(?:-\d+(?::\d+)?)?"
_ARRAY = re.compile(rf"{_ARRAY_ITEM}(?:,{_ARRAY_ITEM})*(?:%\d+)?")
# What may stand in an #SBATCH value at all: sbatch parses quotes, backslashes and `#` comments in
# directive lines and expands `%` patterns in --output, so none of those (nor any space) gets in.
_DIRECTIVE_SAFE = re.compile(r"[A-Za-z0-9._/+~@=:,-]+")
# The one character no shell word can hold.  Everything else in a quoted word (newlines included) is
# safe: it sits after the header, where sbatch has stopped reading directives, and bash reads it back
# verbatim.
_NUL = "\x00"


def _full(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


class ScriptError(ValueError):
    """A submission that cannot be rendered safely; the message names the field."""


@dataclass(frozen=True)
class RemotePaths:
    """Where a run lives on the cluster: `<workspace>/<run id>/` with the clone in `repo/`.

    Each task of an array job has its own log, exit marker and clone (`slurm.<index>.log`,
    `msquant-exit.<index>`, `repo.<index>`): `for_task(index)` gives them.  The `sbatch.*` files
    record the one sbatch run of the submission (see `SlurmClient.sbatch`).
    """

    run_dir: str
    task: str | None = None

    def for_task(self, index: str) -> RemotePaths:
        return RemotePaths(self.run_dir, index)

    def _suffix(self) -> str:
        return f".{self.task}" if self.task is not None else ""

    @property
    def script(self) -> str:
        return f"{self.run_dir}/{SCRIPT_NAME}"

    @property
    def log(self) -> str:
        if self.task is not None:
            return f"{self.run_dir}/slurm.{self.task}.log"
        return f"{self.run_dir}/{LOG_NAME}"

    @property
    def marker(self) -> str:
        return f"{self.run_dir}/{MARKER_NAME}{self._suffix()}"

    @property
    def repo(self) -> str:
        return f"{self.run_dir}/{REPO_DIR_NAME}{self._suffix()}"

    def task_args(self, index: int | str) -> str:
        """The overrides of array task `index` of a sweep (see `task_args_files`)."""
        return f"{self.run_dir}/{TASK_ARGS_NAME}.{index}"

    @property
    def sbatch_started(self) -> str:
        return f"{self.run_dir}/sbatch.started"

    @property
    def sbatch_rc(self) -> str:
        return f"{self.run_dir}/sbatch.rc"

    @property
    def sbatch_out(self) -> str:
        return f"{self.run_dir}/sbatch.out"

    @property
    def sbatch_err(self) -> str:
        return f"{self.run_dir}/sbatch.err"


def remote_paths(workspace: str, run_id: str) -> RemotePaths:
    return RemotePaths(f"{workspace.rstrip('/')}/{run_id}")


def command_line(submission: SlurmSubmission, paths: RemotePaths | None = None) -> str:
    """The command and each Hydra override as separately quoted words: they arrive verbatim.

    A sweep run as a job array (`task_overrides`) reads its task's overrides from the file uploaded
    with the job (`task_args_files`) into a bash array, word by word: no override is ever part of
    the script's text, so none is parsed by a shell.  The read stays on this one line, so a
    cluster's own template that places `command_line` gets it too.
    """
    if not submission.task_overrides:
        return shlex.join([*submission.command, *submission.overrides])
    if paths is None:
        raise ScriptError("task_overrides: the run folder is needed to find each task's overrides")
    args_file = shlex.quote(f"{paths.run_dir}/{TASK_ARGS_NAME}") + _TASK_SUFFIX
    return (
        "_msq_args=(); while IFS= read -r -d '' _msq_word; do _msq_args+=(\"$_msq_word\"); done < "
        f'{args_file}; {shlex.join(submission.command)} "${{_msq_args[@]}}"'
    )


def task_args_files(submission: SlurmSubmission, paths: RemotePaths) -> dict[str, bytes]:
    """The files a sweep's job array needs next to its script: task i's overrides, each word ended
    by NUL (the one character no argument can hold), read back verbatim by `command_line`."""
    return {
        paths.task_args(index): b"".join(word.encode("utf-8") + b"\0" for word in words)
        for index, words in enumerate(submission.task_overrides)
    }


def gres_for(submission: SlurmSubmission) -> str | None:
    if submission.gpus <= 0:
        return None
    return f"gpu:{submission.gpu_type}:{submission.gpus}" if submission.gpu_type else f"gpu:{submission.gpus}"


def _word(field: str, value: object) -> str:
    """A value that reaches the script only as one quoted shell word (command, overrides, repo URL,
    environment values)."""
    if not isinstance(value, str):
        raise ScriptError(f"{field}: expected text, got {type(value).__name__} {value!r}")
    if _NUL in value:
        raise ScriptError(f"{field} {value!r}: a NUL character cannot be passed to a command")
    return value


def _count(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScriptError(f"{field} must be a whole number >= {minimum}, got {value!r}")
    return value


def validate(submission: SlurmSubmission, profile: ClusterProfile) -> None:
    """Refuse what would be unsafe in the script or is outside the profile's allowances.

    Every field placed on an #SBATCH line is checked as a whole string (`fullmatch`: `re.match(...$)`
    also accepts a trailing newline, which would end the directive line); the rest reaches the script
    only as shell-quoted words after the header, where any text but NUL arrives verbatim.
    """
    if not submission.command:
        raise ScriptError("command: a job needs a command to run")
    for i, word in enumerate(submission.command):
        _word(f"command[{i}]", word)
    for i, override in enumerate(submission.overrides):
        _word(f"overrides[{i}]", override)
    if not _full(_NAME_OK, submission.job_name):
        raise ScriptError(f"job_name {submission.job_name!r}: use letters, digits and . _ + - only")
    if submission.no_repo:
        validate_uploads(submission)
    elif not _full(_COMMIT, submission.commit):
        raise ScriptError(f"commit {submission.commit!r} is not a commit hash")
    elif not _word("repo_url", submission.repo_url).strip():
        raise ScriptError("repo_url: the repository to clone is missing")
    elif submission.uploads:
        raise ScriptError("uploads: files are uploaded only for a job without a repository")
    if submission.partition is not None and not _full(_NAME_OK, submission.partition):
        raise ScriptError(f"partition {submission.partition!r} is not a partition name")
    if profile.allowed_partitions and submission.partition not in profile.allowed_partitions:
        raise ScriptError(
            f"partition {submission.partition!r} is not allowed on {profile.name} "
            f"(allowed: {', '.join(profile.allowed_partitions)})"
        )
    if submission.gpu_type is not None and not _full(_NAME_OK, submission.gpu_type):
        raise ScriptError(f"gpu_type {submission.gpu_type!r} is not a GPU type name")
    _count("gpus", submission.gpus, 0)
    _count("cpus", submission.cpus, 1)
    if submission.gpus and profile.allowed_gpu_types and submission.gpu_type not in profile.allowed_gpu_types:
        raise ScriptError(
            f"gpu_type {submission.gpu_type!r} is not allowed on {profile.name} "
            f"(allowed: {', '.join(profile.allowed_gpu_types)})"
        )
    if submission.memory is not None and not _full(_MEMORY, submission.memory):
        raise ScriptError(f"memory {submission.memory!r}: use a number with an optional K/M/G/T unit")
    if submission.time_limit is not None and not _full(_TIME, submission.time_limit):
        raise ScriptError(f"time_limit {submission.time_limit!r}: use minutes, HH:MM:SS or D-HH:MM:SS")
    if submission.array is not None and not _full(_ARRAY, submission.array):
        raise ScriptError(
            f"array {submission.array!r}: use task indices such as 0-9, 1,3,5-7, 0-99:2 or 0-9%2"
        )
    if submission.task_overrides:
        _check_task_overrides(submission)
    for key, value in submission.extra_env:
        if not _full(_ENV_KEY, key):
            raise ScriptError(f"extra_env: {key!r} is not a valid environment variable name")
        _word(f"extra_env[{key}]", value)
    added_directives(submission, profile)  # account, QoS, constraint, signal and extra lines
    if submission.edited_script is not None:
        _word("edited script", submission.edited_script)


def _check_task_overrides(submission: SlurmSubmission) -> None:
    """A sweep's job array: every task index has its overrides, and the command gets no others."""
    if submission.array is None:
        raise ScriptError("task_overrides: a sweep's tasks need an array (e.g. 0-3)")
    if submission.overrides:
        raise ScriptError("task_overrides: each task has its own overrides; overrides must be empty")
    count = len(submission.task_overrides)
    outside = [i for i in array_task_ids(submission.array) if int(i) >= count]
    if outside:
        raise ScriptError(
            f"array {submission.array!r} names task {outside[0]}, but the sweep has {count} members"
        )
    for index, words in enumerate(submission.task_overrides):
        if not words:
            raise ScriptError(f"task_overrides[{index}]: a sweep member has no overrides")
        for i, word in enumerate(words):
            _word(f"task_overrides[{index}][{i}]", word)


_RESERVED_NAMES = frozenset(
    {SCRIPT_NAME, LOG_NAME, MARKER_NAME, "sbatch.started", "sbatch.rc", "sbatch.out", "sbatch.err"}
)


def validate_uploads(submission: SlurmSubmission) -> None:
    """Each upload lands in the job's folder under a plain file name that is not one of ours."""
    seen: set[str] = set()
    for i, pair in enumerate(submission.uploads):
        if len(pair) != 2:
            raise ScriptError(f"uploads[{i}]: expected (local file, name), got {pair!r}")
        local, name = pair
        if not _full(_NAME_OK, name) or name in (".", "..") or name.startswith(MARKER_NAME):
            raise ScriptError(f"uploads[{i}]: {name!r} is not a plain file name (letters, digits, . _ + -)")
        if name in _RESERVED_NAMES or name in seen:
            raise ScriptError(f"uploads[{i}]: the name {name!r} is taken in the job's folder")
        seen.add(name)
        if not Path(_word(f"uploads[{i}]", local)).expanduser().is_file():
            raise ScriptError(f"uploads[{i}]: {local} is not a file here")


def upload_targets(submission: SlurmSubmission, remote: RemotePaths) -> list[tuple[str, str]]:
    """(local file, remote path) of each upload, in the job's folder on the cluster."""
    return [(str(Path(local).expanduser()), f"{remote.run_dir}/{name}") for local, name in submission.uploads]


def sbatch_directives(script: str) -> list[str]:
    """The directive lines sbatch will read, as sbatch 22.05 finds them (src/sbatch/opt.c): lines that
    start with `#SBATCH` (or the old `#SLURM`) at column 0, up to the first line that is neither blank
    nor a comment.  Every rendered script is audited with it."""
    directives = []
    for line in script.split("\n"):
        if line.startswith(("#SBATCH", "#SLURM")):
            directives.append(line.rstrip())
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return directives


_ARRAY_OPTION = re.compile(r"#SBATCH\s+(?:--array[=\s]|-a\s*)(\S+)")


def array_spec_of(script: str) -> str | None:
    """The task expression of the `--array` / `-a` directive sbatch will read in `script`, if any."""
    for line in sbatch_directives(script):
        match = _ARRAY_OPTION.match(line)
        if match:
            return match.group(1)
    return None


def _directives(values: dict[str, object]) -> list[str]:
    """Our `#SBATCH --key=value` lines; each value must be directive-safe (checked, not escaped)."""
    lines = []
    for key, value in values.items():
        if value is None or value == "":
            continue
        text = str(value)
        # `%` is a file-name pattern only in --output/--error/--input; in --array it is the throttle.
        checked = text.replace("%", "", 1) if key == "array" and _full(_ARRAY, text) else text
        if not _DIRECTIVE_SAFE.fullmatch(checked):
            raise ScriptError(f"--{key}={text!r} cannot be written safely on an #SBATCH line")
        lines.append(f"#SBATCH --{key}={text}")
    return lines


COMMAND_TEMPLATE = "assets/templates/sbatch_command.sh.j2"
"""A job without a repository: no clone, the command runs in the job's folder with its uploads."""


def _shipped_template(name: str) -> str:
    return resources.files("msquant_desktop").joinpath(name).read_text("utf-8")


def _environment(template_text: str | None) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    if template_text is None:
        template_text = (
            resources.files("msquant_desktop").joinpath("assets/templates/sbatch.sh.j2").read_text("utf-8")
        )
    return env.from_string(template_text)


ARRAY_LOG_PATTERN = "slurm.%a.log"
"""The `--output` of an array job: sbatch puts each task's index in place of `%a`."""
_TASK_SUFFIX = '."$SLURM_ARRAY_TASK_ID"'
"""Appended to a quoted path in an array job's script: each task gets its own marker and clone."""


def render_script(
    submission: SlurmSubmission, profile: ClusterProfile, run_id: str, slurm_name: str, workspace: str
) -> str:
    """The sbatch script text.  `workspace` is the remote workspace with `~`/variables expanded.

    An array job (the submission's `array`, or an `--array` directive in the profile's own template)
    gets one log, exit marker and clone per task (see RemotePaths.for_task).
    """
    validate(submission, profile)
    template_text = None
    if submission.no_repo:  # a cluster's own template clones a repository; this job has none
        template_text = _shipped_template(COMMAND_TEMPLATE)
    elif profile.sbatch_template:
        template_text = Path(profile.sbatch_template).expanduser().read_text(encoding="utf-8")
    script = _render(
        submission, profile, run_id, slurm_name, workspace, template_text, submission.array is not None
    )
    if submission.array is None and array_spec_of(script) is not None:  # the template's own array
        script = _render(submission, profile, run_id, slurm_name, workspace, template_text, True)
    script = _with_directives(script, added_directives(submission, profile))
    if submission.edited_script is not None:
        script = _adopt_edit(submission, profile, script, run_id, slurm_name, workspace)
    return script


# ------------------------------------------------------------------------------------------------
# Options beyond the template's: account, QoS, constraint, --signal, extra #SBATCH lines
# ------------------------------------------------------------------------------------------------


def added_directives(submission: SlurmSubmission, profile: ClusterProfile) -> list[str]:
    """The directive lines added after the template's header: account, QoS and constraint (the
    submission's, else the profile's), `--signal=B:USR1@N` (the template's USR1 trap then fires before
    the time limit), then the profile's and the submission's extra lines (sbatch_options owns what
    they may be).  Raises ScriptError naming the field."""
    try:
        lines = []
        for option, value in (
            ("account", submission.account or profile.account),
            ("qos", submission.qos or profile.qos),
        ):
            if value:
                lines.append(f"#SBATCH --{option}={sbatch_options.check_name_value(option, value)}")
        constraint = submission.constraint or profile.constraint
        if constraint:
            lines.append(f"#SBATCH --constraint={sbatch_options.check_constraint(constraint)}")
        signal = sbatch_options.signal_directive(
            sbatch_options.check_signal_lead(profile.signal_lead_s), submission.time_limit
        )
        if signal:
            lines.append(signal)
        lines.extend(sbatch_options.merged_lines(profile.sbatch_lines, submission.sbatch_lines))
    except OptionError as exc:
        raise ScriptError(str(exc)) from exc
    return lines


def _with_directives(script: str, lines: list[str]) -> str:
    """`lines` inserted right after the last directive of the header, so any template (the shipped
    one, a cluster's own) gets them without naming them; checked to be read by sbatch."""
    if not lines:
        return script
    header = sbatch_directives(script)
    text = script.split("\n")
    last = max(i for i, line in enumerate(text) if line.rstrip() in header)
    script = "\n".join([*text[: last + 1], *lines, *text[last + 1 :]])
    found = sbatch_directives(script)
    missing = [line for line in lines if line not in found]
    if missing:
        raise ScriptError("the rendered script would not give sbatch these directives: " + "; ".join(missing))
    return script


# ------------------------------------------------------------------------------------------------
# The preview, and a preview the user edited before sending
# ------------------------------------------------------------------------------------------------

PREVIEW_RUN_ID = "PREVIEW-RUN"
"""The run id a preview is rendered with; an edited preview has it replaced by the real one."""


def preview_slurm_name(job_name: str) -> str:
    return f"{job_name}-PREVIEW"


def render_preview(submission: SlurmSubmission, profile: ClusterProfile) -> str:
    """The script as it will be sent, with placeholder run id and the workspace as the profile writes
    it.  A submission with an edited script gets that script back, audited (ScriptError if refused)."""
    return render_script(
        submission, profile, PREVIEW_RUN_ID, preview_slurm_name(submission.job_name), profile.workspace
    )


def edit_diff(submission: SlurmSubmission, profile: ClusterProfile) -> str:
    """A unified diff from the rendered preview to the user's edit ("" when not edited)."""
    if submission.edited_script is None:
        return ""
    import difflib

    base = render_preview(dataclasses.replace(submission, edited_script=None), profile)
    return "".join(
        difflib.unified_diff(
            base.splitlines(keepends=True),
            submission.edited_script.splitlines(keepends=True),
            "rendered",
            "edited",
        )
    )


_FIELD_CHECKS: dict[str, tuple[re.Pattern[str], str]] = {
    "partition": (_NAME_OK, "a partition name"),
    "gres": (re.compile(r"gpu(?::[A-Za-z0-9._+-]+)?:\d+"), "gpu:N or gpu:TYPE:N"),
    "cpus-per-task": (re.compile(r"[1-9]\d*"), "a whole number"),
    "mem": (_MEMORY, "a number with an optional K/M/G/T unit"),
    "time": (_TIME, "minutes, HH:MM:SS or D-HH:MM:SS"),
}


def _audit_directive(line: str, profile: ClusterProfile) -> None:
    """One directive of an edited script: a field option with a value its field would take (and the
    profile allows), else an extra line sbatch_options accepts."""
    try:
        name, value = sbatch_options.parse_directive(line)
        if name in ("account", "qos"):
            sbatch_options.check_name_value(name, value or "")
        elif name == "constraint":
            sbatch_options.check_constraint(value or "")
        elif name in _FIELD_CHECKS:
            pattern, what = _FIELD_CHECKS[name]
            if value is None or not pattern.fullmatch(value):
                raise ScriptError(f"edited script: {line!r}: --{name} takes {what}")
            if name == "partition" and profile.allowed_partitions and value not in profile.allowed_partitions:
                raise ScriptError(f"edited script: partition {value!r} is not allowed on {profile.name}")
            gpu_type = value.split(":")[1] if name == "gres" and value.count(":") == 2 else None
            if gpu_type and profile.allowed_gpu_types and gpu_type not in profile.allowed_gpu_types:
                raise ScriptError(f"edited script: gpu_type {gpu_type!r} is not allowed on {profile.name}")
        elif name not in sbatch_options.SET_BY_APP:
            sbatch_options.check_extra_line(line)
    except OptionError as exc:
        raise ScriptError(f"edited script: {exc}") from exc


def audit_edited(edited: str, rendered: str, profile: ClusterProfile) -> None:
    """Refuse an edited script that sbatch would read differently from what the app tracks: the
    directives the app sets (job name, log, run folder, array, signal) must stay exactly as rendered;
    every other directive must be one the form or an extra line could have given."""
    if not edited.startswith("#!"):
        raise ScriptError("edited script: the first line must stay an interpreter line such as #!/bin/bash")
    found = sbatch_directives(edited)
    for line in sbatch_directives(rendered):
        name = line.split("=", 1)[0].removeprefix("#SBATCH --")
        if name in sbatch_options.SET_BY_APP and line not in found:
            raise ScriptError(f"edited script: keep {line!r} as rendered ({sbatch_options.SET_BY_APP[name]})")
    own = set(sbatch_directives(rendered))
    for line in found:
        if line in own:
            continue
        name = line.split("=", 1)[0].removeprefix("#SBATCH --")
        if name in sbatch_options.SET_BY_APP:
            raise ScriptError(
                f"edited script: {line!r}: --{name} is set by the app ({sbatch_options.SET_BY_APP[name]})"
            )
        _audit_directive(line, profile)


def _adopt_edit(
    submission: SlurmSubmission,
    profile: ClusterProfile,
    rendered: str,
    run_id: str,
    slurm_name: str,
    workspace: str,
) -> str:
    """The user's edit of the preview with the preview's placeholders (run folder, run id, job name)
    replaced by this run's, audited against `rendered` (this run's script without the edit)."""
    assert submission.edited_script is not None
    text = (
        submission.edited_script.replace(
            remote_paths(profile.workspace, PREVIEW_RUN_ID).run_dir, remote_paths(workspace, run_id).run_dir
        )
        .replace(PREVIEW_RUN_ID, run_id)
        .replace(preview_slurm_name(submission.job_name), slurm_name)
    )
    audit_edited(text, rendered, profile)
    return text


def _render(
    submission: SlurmSubmission,
    profile: ClusterProfile,
    run_id: str,
    slurm_name: str,
    workspace: str,
    template_text: str | None,
    per_task: bool,
) -> str:
    paths = remote_paths(workspace, run_id)
    log_path = f"{paths.run_dir}/{ARRAY_LOG_PATTERN}" if per_task else paths.log
    suffix = _TASK_SUFFIX if per_task else ""
    expected = _directives(
        {
            "job-name": slurm_name,
            "output": paths.log,
            "chdir": paths.run_dir,
            "partition": submission.partition,
            "gres": gres_for(submission),
            "cpus-per-task": submission.cpus,
            "mem": submission.memory,
            "time": submission.time_limit,
            "array": submission.array,
        }
    )
    if per_task:  # the log's folder is checked above; `%a` is sbatch's own pattern, added by us
        expected = [
            f"#SBATCH --output={log_path}" if line.startswith("#SBATCH --output=") else line
            for line in expected
        ]
    script = _environment(template_text).render(
        run_id=run_id,
        run_id_q=shlex.quote(run_id),
        slurm_name=slurm_name,
        log_path=log_path,
        run_dir=paths.run_dir,
        partition=submission.partition,
        gres=gres_for(submission),
        cpus=submission.cpus,
        memory=submission.memory,
        time_limit=submission.time_limit,
        array=submission.array,
        marker_path_q=shlex.quote(paths.marker) + suffix,
        env=[(k, shlex.quote(v)) for k, v in submission.extra_env],
        repo_url_q=shlex.quote(submission.repo_url),
        repo_dir_q=shlex.quote(paths.repo) + suffix,
        commit=submission.commit,
        commit_q=shlex.quote(submission.commit),
        preamble=profile.preamble.strip(),
        command_line=command_line(submission, paths),
        uploads=", ".join(name for _, name in submission.uploads),  # plain names (validate_uploads)
    )
    found = sbatch_directives(script)
    missing = [line for line in expected if line not in found]
    if missing:
        raise ScriptError("the rendered script would not give sbatch these directives: " + "; ".join(missing))
    return script
