"""No value can end an #SBATCH line: every field placed on one is checked as a whole string, every
other field arrives as quoted words, and the script sbatch receives is audited (its directives, as
sbatch reads them) and run by bash to see each value arrive verbatim."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.slurm.script import ScriptError, command_line, render_script, sbatch_directives, validate

NASTY = [
    "x\n",  # a trailing newline: what re.match(...$) let through
    "x\r",
    "x\n#SBATCH --time=99:00:00",
    "x;touch /tmp/pwned",
    "$(touch /tmp/pwned)",
    "`id`",
    "#SBATCH --partition=other",
    "x y",
    "x\u2028y",
    "x\x00",
]
PROFILE = ClusterProfile(name="c", host="h", workspace="/scratch/u")
BASE = SlurmSubmission(
    cluster="c",
    job_name="train",
    repo_url="https://example.org/r.git",
    commit="0123abcd" * 5,
    command=("python", "train.py"),
    partition="gpu",
    gpu_type="a100",
    gpus=2,
    cpus=4,
    memory="16G",
    time_limit="01:00:00",
)
EXPECTED = [
    "#SBATCH --job-name=train-abc123",
    "#SBATCH --output=/scratch/u/run1/slurm.log",
    "#SBATCH --chdir=/scratch/u/run1",
    "#SBATCH --partition=gpu",
    "#SBATCH --gres=gpu:a100:2",
    "#SBATCH --cpus-per-task=4",
    "#SBATCH --mem=16G",
    "#SBATCH --time=01:00:00",
    "#SBATCH --signal=B:USR1@300",  # the profile's default lead: the USR1 trap fires before the limit
]


def render(submission: SlurmSubmission, workspace: str = "/scratch/u") -> str:
    return render_script(submission, PROFILE, "run1", f"{submission.job_name}-abc123", workspace)


def test_the_plain_script_gives_sbatch_exactly_our_directives() -> None:
    script = render(BASE)
    assert sbatch_directives(script) == EXPECTED
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize("field", ["job_name", "partition", "gpu_type", "memory", "time_limit", "commit"])
@pytest.mark.parametrize("value", NASTY, ids=[repr(v) for v in NASTY])
def test_a_directive_field_refuses_anything_but_its_shape(field: str, value: str) -> None:
    with pytest.raises(ScriptError, match=field):
        validate(dataclasses.replace(BASE, **{field: value}), PROFILE)


@pytest.mark.parametrize(
    "value", ["/scratch/u\n", "/scratch/my u", "/scratch/%j", "/scratch/#u", "/scratch/'u'"]
)
def test_a_workspace_that_cannot_stand_on_a_directive_line_is_refused(value: str) -> None:
    with pytest.raises(ScriptError, match="#SBATCH line"):
        render(BASE, workspace=value)


QUOTED = [
    "a;b",
    "$(touch /tmp/pwned)",
    "`id`",
    "#SBATCH --time=99:00:00",
    "it's",
    'say "hi"',
    "back\\slash",
    "--",
    "",
]


def test_quoted_fields_arrive_verbatim_and_leave_the_header_alone() -> None:
    printer = (sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))")
    submission = dataclasses.replace(
        BASE,
        command=(*printer, *QUOTED[:6]),
        overrides=tuple(QUOTED),
        repo_url="https://example.org/r.git;$(id)\n#SBATCH --time=9",
        extra_env=(("MSQ_NOTE", "$(id);\n#SBATCH --mem=1\r"),),
    )
    script = render(submission)
    assert sbatch_directives(script) == EXPECTED
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    line = command_line(submission)
    assert f"\n{line} &\nwait $!" in script
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [*QUOTED[:6], *QUOTED]
    export = script[script.index("export MSQ_NOTE=") :].split("\necho ", 1)[0]
    shown = subprocess.run(["bash", "-c", f'{export}\nprintf %s "$MSQ_NOTE"'], capture_output=True)
    assert shown.stdout.decode() == "$(id);\n#SBATCH --mem=1\r"  # bytes: text mode would turn \r into \n


@pytest.mark.parametrize(
    "changes",
    [
        {"overrides": ("a=\x001",)},
        {"command": ("python", "x\x00y")},
        {"extra_env": (("A", "1\x002"),)},
        {"extra_env": (("A\n", "1"),)},
        {"overrides": ([],)},  # what argparse made of --override=-- before the CLI fix
        {"gpus": True},
        {"cpus": "4"},
    ],
)
def test_nul_bad_names_and_wrong_types_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ScriptError):
        validate(dataclasses.replace(BASE, **changes), PROFILE)  # type: ignore[arg-type]


def test_override_of_a_double_dash_arrives_as_double_dash() -> None:
    from msquant_desktop.cli import slurm as slurm_cli

    parser = argparse.ArgumentParser()
    slurm_cli.register(parser.add_subparsers(dest="command_name"))
    args = parser.parse_args(
        ["slurm", "submit", "c", "--repo", "r", "--commit", "abc1234", "--name", "n"]
        + ["--override=--", "--override", "a=1", "--override=--x", "--", "python", "x.py"]
    )
    assert args.override == ["--", "a=1", "--x"]
    submission = dataclasses.replace(BASE, overrides=tuple(args.override))
    assert command_line(submission).endswith("python train.py -- a=1 --x")


def test_profile_names_are_full_string_checked() -> None:
    from msquant_desktop.slurm.profiles import ProfileError, parse_profiles

    base = "clusters:\n- name: a\n  host: me@h\n  workspace: /s\n"
    with pytest.raises(ProfileError, match="allowed_partitions"):
        parse_profiles(base + '  allowed_partitions: ["gpu\\n"]\n')
    with pytest.raises(ProfileError, match="workspace"):
        parse_profiles('clusters:\n- name: a\n  host: me@h\n  workspace: "/s\\n#SBATCH --time=9"\n')
    assert parse_profiles(base + '  preamble: "module load cuda\\nsource env.sh"\n')[0].preamble
