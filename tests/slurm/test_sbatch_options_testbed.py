"""Account, QoS, constraint, extra lines, --signal and an edited preview on the real testbed: what
sbatch takes, what it refuses, and that SLURM's USR1 reaches the batch shell's trap before the time
limit (SLURM's own behaviour with `--signal=B:USR1@N`)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.slurm.script import render_preview
from tests.conftest import run_cli_argv

pytestmark = pytest.mark.slurm


def _cli(data: Path, clusters: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = run_cli_argv("--data-dir", str(data), "slurm", command, "--clusters", str(clusters), *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _status(data: Path, clusters: Path, job_id: str) -> dict[str, object]:
    (status,) = [
        j for j in json.loads(_cli(data, clusters, "status", "--json").stdout)["jobs"] if str(j["id"]) == job_id
    ]
    return dict(status)


def _wait(
    data: Path, clusters: Path, job_id: str, states: tuple[str, ...], seconds: float
) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        status = _status(data, clusters, job_id)
        if status["state"] in states or time.monotonic() > deadline:
            return status
        time.sleep(1.0)


def test_cli_options_reach_sbatch_and_bad_ones_are_refused(testbed, profile, bare_repo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [dataclasses.replace(profile, account="proj1", sbatch_lines=("--nice=10",))])
    data = tmp_path / "data"
    repo_path, first, _ = bare_repo
    common = ["submit", "testbed", "--repo", repo_path, "--commit", first]

    bad = _cli(data, clusters, *common, "--name", "bad", "--sbatch-line=--output=/tmp/x", "--", "true")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "--output is set by the app" in bad.stderr
    assert json.loads(_cli(data, clusters, "status", "--json").stdout)["jobs"] == []  # nothing stored, nothing sent

    refused = _cli(data, clusters, *common, "--name", "nofeat", "--constraint", "gpu80g", "--", "true")
    assert refused.returncode == 1 and "Invalid feature specification" in refused.stderr

    submitted = _cli(
        data,
        clusters,
        *common,
        "--name",
        "opts",
        "--qos",
        "normal",
        "--constraint",
        "a100&ib",  # only node1 has ib
        "--sbatch-line=#SBATCH --comment=msq-extra",
        "--",
        "sleep",
        "30",
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    status = _wait(data, clusters, job_id, ("RUNNING",), 20)
    assert status["state"] == "RUNNING"
    shown = testbed.run_as_root("scontrol", "show", "job", str(status["slurm_job_id"]))
    for expected in ("Account=proj1", "QOS=normal", "Features=a100&ib", "Comment=msq-extra", "Nice=10"):
        assert expected in shown, shown
    assert "NodeList=node1" in shown
    testbed.run_as_root("scancel", str(status["slurm_job_id"]))


def test_usr1_reaches_the_batch_shells_trap_before_the_time_limit(
    testbed, profile, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    clusters = tmp_path / "clusters.yaml"
    # A one-minute limit with a 59 s lead: SLURM signals at its first time-limit check (it may send the
    # signal up to 60 s early, sbatch(1)), well before the job would be killed for its time.
    save_profiles(clusters, [dataclasses.replace(profile, signal_lead_s=59)])
    data = tmp_path / "data"
    repo_path, first, _ = bare_repo
    started = time.monotonic()
    submitted = _cli(
        data, clusters, "submit", "testbed", "--repo", repo_path, "--commit", first, "--name", "warned",
        "--time", "1", "--", "sleep", "300",
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    final = _wait(data, clusters, job_id, ("CANCELLED", "FAILED", "TIMEOUT", "COMPLETED"), 80)
    took = time.monotonic() - started
    assert final["state"] == "TIMEOUT" and took < 58, (final, took)  # ended before its time limit
    assert "time-limit warning (SIGUSR1" in str(final["reason"]) and "exit marker" in str(final["reason"])
    (run_dir,) = [p for p in data.rglob("*_slurm_*") if p.is_dir()]  # the remote folder has its name
    marker = Path(testbed.workspace) / run_dir.name / "msquant-exit"
    assert "exit=138 signal=USR1 stage=command" in marker.read_text()  # the template's USR1 trap ran
    log = _cli(data, clusters, "logs", job_id).stdout
    assert "DUE TO TIME LIMIT" not in log


def test_an_edited_preview_is_sent_as_edited_and_recorded(
    qtbot, testbed, profile, client, bare_repo, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services import cluster_jobs
    from msquant_desktop.slurm.script import edit_diff
    from msquant_desktop.store import JobRepository, connect
    from msquant_desktop.ui.clusters.submit_form import SubmitForm

    repo_path, first, _ = bare_repo
    form = SubmitForm()
    qtbot.addWidget(form)
    form.set_profile(profile)
    form.repo_url.setText(repo_path)
    form.commit.setText(first)
    form.command.setText("python3 main.py")
    form.job_name.setText("edited")
    form.sbatch_lines.setPlainText("#SBATCH --comment=from-form")
    previewed = form.submission()
    form.show_preview(previewed, render_preview(previewed, profile))
    text = form.preview.toPlainText()
    assert "#SBATCH --comment=from-form" in text
    form.preview.setPlainText(text.replace("python3 main.py", "python3 main.py 3 edited-arg"))
    sent: list[SlurmSubmission] = []
    form.sig_submit.connect(sent.append)
    form.time_limit.setText("5")  # the form changed after the edit: refused, the edit stays
    form.submit_button.click()
    assert not sent and "preview again" in form.problem.text() and "edited-arg" in form.preview.toPlainText()
    form.time_limit.setText("")
    form.submit_button.click()
    (submission,) = sent
    assert submission.edited_script is not None and "edited-arg" in submission.edited_script

    repo = JobRepository(connect(tmp_path / "jobs.db"))
    job = cluster_jobs.create_job(repo, tmp_path / "runs", submission, script_diff=edit_diff(submission, profile))
    assert job.spec.meta["script_edited"] is True
    assert "+python3 main.py 3 edited-arg" in job.spec.meta["script_diff"]
    slurm_id, script, remote = cluster_jobs.send_submission(
        client, job, cluster_jobs.steps_in_store(repo, job.id)
    )
    cluster_jobs.record_submitted(repo, job.id, slurm_id, script, remote)
    assert (Path(job.run_dir or "") / cluster_jobs.LOCAL_SCRIPT).read_text() == script  # the script sent
    assert "edited-arg" in script and "PREVIEW" not in script
    marker = Path(remote.marker)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "exit=3 " in marker.read_text()  # main.py exits with its first argument: the edit ran
    assert 'ARGV ["3", "edited-arg"]' in Path(remote.log).read_text()
