"""Account, QoS, constraint, --signal and extra #SBATCH lines: checked once (slurm/sbatch_options),
the same for a profile, a submission and an edited preview.

The option names and value shapes are sbatch's own (Slurm 22.05.8 sbatch(1), and
https://slurm.schedmd.com/sbatch.html): `--constraint="intel&gpu"`, `--constraint="[rack1*2&rack2*4]"`,
`--mail-type=END,FAIL`, `--nodelist=node[01-04]`, `--dependency=afterok:123`, `--begin=now+1hour`,
`--signal=[{R|B}:]<sig_num>[@sig_time]` with sig_time 0-65535.
"""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.slurm.profiles import ProfileError, dump_profiles, parse_profiles
from msquant_desktop.slurm.sbatch_options import OptionError, check_extra_line, merged_lines
from msquant_desktop.slurm.script import (
    ScriptError,
    edit_diff,
    render_preview,
    render_script,
    sbatch_directives,
    validate,
)

PROFILE = ClusterProfile(name="c", host="h", workspace="~/ws", account="proj1", signal_lead_s=120)
BASE = SlurmSubmission(
    cluster="c",
    job_name="train",
    repo_url="https://example.org/r.git",
    commit="0123abcd" * 5,
    command=("python", "train.py"),
    time_limit="01:00:00",
)

# From sbatch(1) and the Slurm docs' examples.
FIELD_LINES = [
    "#SBATCH --mail-type=END,FAIL",
    "#SBATCH --mail-user=me@uni.example.edu",
    "#SBATCH --nodelist=node[01-04]",
    "#SBATCH --dependency=afterok:123",
    "#SBATCH --begin=now+1hour",
    "#SBATCH --exclusive",
    "#SBATCH --gpus-per-task=1",
    "#SBATCH --export=ALL,FOO=1",
    "#SBATCH --licenses=matlab:1",
]


@pytest.mark.parametrize("line", FIELD_LINES)
def test_the_shapes_sbatch_documents_are_taken_as_written(line: str) -> None:
    assert check_extra_line(line) == line
    assert check_extra_line(line.removeprefix("#SBATCH ")) == line  # `--opt=value` alone is the same


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("#SBATCH --output=/tmp/x.log", "set by the app"),
        ("#SBATCH --error=/tmp/x.err", "set by the app"),
        ("#SBATCH --array=0-3", "Array field"),
        ("#SBATCH --chdir=/tmp", "set by the app"),
        ("#SBATCH --job-name=other", "set by the app"),
        ("#SBATCH --signal=B:USR1@60", "signal_lead_s"),
        ("#SBATCH --time=10", "Time limit field"),
        ("#SBATCH --account=x", "Account field"),
        ("#SBATCH --wrap=ls", "not allowed"),
        ("#SBATCH --parsable", "not allowed"),
        ("#SBATCH --out=/tmp/x", "not an sbatch option"),  # getopt_long would read --output
        ("#SBATCH -o /tmp/x", "long form"),
        ("#SBATCH --comment=two words", "no spaces"),
        ('#SBATCH --comment="quoted"', "no spaces"),
        ("#SBATCH --mail-user=$USER", "no spaces"),
        ("#SBATCH --exclusive\n#SBATCH --output=/tmp/x", "one line"),
        ("#SBATCH --exclusive\n", "one line"),
        ("touch /tmp/pwned", "#SBATCH --name"),
    ],
)
def test_a_bad_extra_line_is_refused_with_its_reason(line: str, reason: str) -> None:
    with pytest.raises(OptionError, match=reason) as caught:
        check_extra_line(line)
    assert "\n" not in str(caught.value).replace("\\n", "")


def test_a_submission_line_replaces_the_profiles_line_of_the_same_option() -> None:
    merged = merged_lines(("--mail-type=END", "--exclusive"), ("--mail-type=ALL",))
    assert merged == ["#SBATCH --exclusive", "#SBATCH --mail-type=ALL"]


def test_options_land_in_the_header_after_the_templates_own() -> None:
    sub = dataclasses.replace(
        BASE, qos="normal", constraint="[rack1*2&rack2*4]", sbatch_lines=("--mail-type=END",)
    )
    script = render_script(sub, PROFILE, "run1", "train-abc", "/home/u/ws")
    assert sbatch_directives(script)[-5:] == [
        "#SBATCH --account=proj1",  # the profile's
        "#SBATCH --qos=normal",
        "#SBATCH --constraint=[rack1*2&rack2*4]",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --mail-type=END",
    ]
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    other = dataclasses.replace(sub, account="proj2")
    assert "#SBATCH --account=proj2" in render_script(other, PROFILE, "run1", "train-abc", "/home/u/ws")
    no_signal = dataclasses.replace(PROFILE, signal_lead_s=0)
    assert "--signal" not in render_script(BASE, no_signal, "run1", "train-abc", "/home/u/ws")


@pytest.mark.parametrize(
    "changes",
    [
        {"account": "a\n#SBATCH --time=9"},
        {"qos": "high prio"},
        {"constraint": "a100 && ib"},
        {"constraint": "x\n"},
        {"sbatch_lines": ("--output=/tmp/x",)},
    ],
)
def test_a_bad_option_value_is_refused_before_anything_renders(changes: dict[str, object]) -> None:
    with pytest.raises(ScriptError):
        validate(dataclasses.replace(BASE, **changes), PROFILE)  # type: ignore[arg-type]


def test_a_profile_carries_its_options_through_yaml_and_refuses_bad_ones() -> None:
    text = (
        "clusters:\n- name: c\n  host: u@h\n  workspace: ~/ws\n  account: proj1\n  qos: normal\n"
        "  constraint: a100&ib\n  signal_lead_s: 600\n  sbatch_lines: ['#SBATCH --exclusive']\n"
    )
    (profile,) = parse_profiles(text)
    assert (profile.account, profile.qos, profile.constraint, profile.signal_lead_s) == (
        "proj1",
        "normal",
        "a100&ib",
        600,
    )
    assert profile.sbatch_lines == ("#SBATCH --exclusive",)
    assert parse_profiles(dump_profiles([profile])) == [profile]
    for bad, reason in (
        ("  sbatch_lines: ['#SBATCH --output=/x']", "--output is set by the app"),
        ("  signal_lead_s: 70000", "signal_lead_s"),
        ("  qos: 'a b'", "qos 'a b'"),
    ):
        with pytest.raises(ProfileError, match=reason) as caught:
            parse_profiles("clusters:\n- name: c\n  host: u@h\n  workspace: ~/ws\n" + bad + "\n")
        assert str(caught.value).startswith("clusters.yaml: cluster #1 ('c'): ")


def test_an_edited_preview_is_sent_as_edited_with_this_runs_paths_and_its_diff_recorded() -> None:
    preview = render_preview(BASE, PROFILE)
    edited = preview.replace("#SBATCH --time=01:00:00", "#SBATCH --time=02:00:00\n#SBATCH --exclusive")
    edited = edited.replace("python train.py", "python train.py --fast")
    sub = dataclasses.replace(BASE, edited_script=edited)
    script = render_script(sub, PROFILE, "run1", "train-abc", "/home/u/ws")
    directives = sbatch_directives(script)
    assert "#SBATCH --output=/home/u/ws/run1/slurm.log" in directives
    assert "#SBATCH --job-name=train-abc" in directives and "#SBATCH --exclusive" in directives
    assert "python train.py --fast" in script and "PREVIEW" not in script
    diff = edit_diff(sub, PROFILE)
    assert "-#SBATCH --time=01:00:00\n+#SBATCH --time=02:00:00\n+#SBATCH --exclusive" in diff
    assert edit_diff(BASE, PROFILE) == ""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t.replace("#SBATCH --output=~/ws/PREVIEW-RUN/slurm.log\n", ""), "keep '#SBATCH --output="),
        (lambda t: t.replace("--signal=B:USR1@120", "--signal=B:USR1@1"), "keep '#SBATCH --signal="),
        (lambda t: t.replace("#SBATCH --time=01:00:00", "#SBATCH --time=soon"), "--time takes"),
        (lambda t: t.replace("#SBATCH --time=01:00:00", "#SBATCH --error=/tmp/e"), "--error is set by"),
        (lambda t: t.replace("#SBATCH --time=01:00:00", "#SBATCH --comment=$(id)"), "no spaces"),
        (lambda t: t.replace("#!/bin/bash\n", ""), "interpreter line"),
        (lambda t: t + "\x00", "NUL"),
    ],
)
def test_an_edit_that_would_break_tracking_is_refused(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    edited = change(render_preview(BASE, PROFILE))
    with pytest.raises(ScriptError, match=reason):
        render_preview(dataclasses.replace(BASE, edited_script=edited), PROFILE)


def test_an_edited_partition_must_be_one_the_profile_allows() -> None:
    profile = dataclasses.replace(PROFILE, allowed_partitions=("gpu",))
    base = dataclasses.replace(BASE, partition="gpu")
    edited = render_preview(base, profile).replace("--partition=gpu", "--partition=big")
    with pytest.raises(ScriptError, match="partition 'big' is not allowed"):
        render_preview(dataclasses.replace(base, edited_script=edited), profile)


def test_a_project_cluster_launch_carries_its_sbatch_options() -> None:
    from msquant_desktop.domain.jobs import JobTarget
    from msquant_desktop.domain.projects import ClusterResources, LaunchPlan, slurm_submission

    plan = LaunchPlan(
        project_id=1, project_name="proj", repo="/r", entry_point="python train.py", overrides=(),
        command=("python", "train.py"), commit="0123abcd" * 5, commit_subject="s", target=JobTarget.SLURM,
        cluster="c", repo_url="https://example.org/r.git",
        resources=ClusterResources(account="proj2", qos="high", constraint="h100", sbatch_lines=("--exclusive",)),
    )  # fmt: skip
    script = render_script(slurm_submission(plan), PROFILE, "run1", "proj-abc", "/home/u/ws")
    assert sbatch_directives(script)[-5:] == [
        "#SBATCH --account=proj2",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=h100",
        "#SBATCH --signal=B:USR1@120",
        "#SBATCH --exclusive",
    ]


@pytest.mark.parametrize(
    ("time_limit", "seconds", "lead"),
    [
        ("90", 5400, 300),  # minutes
        ("1", 60, 30),  # a lead as long as the limit would signal at start: half the limit
        ("5:30", 330, 165),  # minutes:seconds
        ("01:00:00", 3600, 300),  # hours:minutes:seconds
        ("2-12", 216000, 300),  # days-hours
        ("1-00:30", 88200, 300),  # days-hours:minutes
        ("1-00:00:10", 86410, 300),  # days-hours:minutes:seconds
    ],
)
def test_the_signal_lead_fits_inside_the_time_limit(time_limit: str, seconds: int, lead: int) -> None:
    from msquant_desktop.slurm.sbatch_options import signal_directive, time_limit_seconds

    assert time_limit_seconds(time_limit) == seconds
    assert signal_directive(300, time_limit) == f"#SBATCH --signal=B:USR1@{lead}"
    assert signal_directive(300, None) == "#SBATCH --signal=B:USR1@300"
    assert signal_directive(0, time_limit) is None


def test_the_project_launch_form_reads_its_sbatch_options(qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.ui.projects.launch_form import LaunchForm

    form = LaunchForm()
    qtbot.addWidget(form)
    form.account.setText(" proj2 ")
    form.qos.setText("high")
    form.sbatch_lines.setText("--exclusive; #SBATCH --mail-type=END ;")
    res = form.resources()
    assert (res.account, res.qos, res.constraint) == ("proj2", "high", None)
    assert res.sbatch_lines == ("--exclusive", "#SBATCH --mail-type=END")


def test_a_job_stopped_by_the_time_limit_warning_ends_timeout() -> None:
    from msquant_desktop.domain.jobs import JobState
    from msquant_desktop.domain.slurm import (
        TIME_LIMIT_WARNED,
        decide_final,
        final_from_marker,
        final_from_slurm,
    )

    # What the testbed said for a --time=1 job whose trap took the USR1: sacct FAILED 10:0, the marker USR1.
    marker = final_from_marker("exit=138 signal=USR1 stage=command at=2026-12-01T23:46:03Z")
    controller = final_from_slurm("FAILED", "10:0", "sacct")
    for final in (decide_final(controller, marker), decide_final(None, marker)):
        assert final is not None and final.state is JobState.TIMEOUT and final.reason == TIME_LIMIT_WARNED
    terminated = final_from_marker("exit=143 signal=TERM stage=command at=2026-12-01T23:46:03Z")
    assert terminated is not None and terminated.state is JobState.CANCELLED  # other signals as before


def test_a_profile_carries_its_serve_command_and_refuses_one_on_two_lines() -> None:
    from msquant_desktop.services.serve_placement import DEFAULT_SERVE_TEMPLATE, template_for

    text = (
        "clusters:\n- name: c\n  host: u@h\n  workspace: ~/ws\n"
        "  serve_template: 'vllm serve {model} -tp {tp} --port {port} --max-model-len 8192'\n"
    )
    (profile,) = parse_profiles(text)
    assert template_for(profile) == "vllm serve {model} -tp {tp} --port {port} --max-model-len 8192"
    assert parse_profiles(dump_profiles([profile])) == [profile]
    (bare,) = parse_profiles("clusters:\n- name: c\n  host: u@h\n  workspace: ~/ws\n")
    assert template_for(bare) == DEFAULT_SERVE_TEMPLATE
    with pytest.raises(ProfileError, match="serve_template") as caught:
        parse_profiles(text.replace("--max-model-len 8192", "\\n rm -rf ~").replace("'", '"'))
    assert len(str(caught.value).splitlines()) == 1
