"""A command without a repository, with files uploaded into the job's folder (where it runs): from the
Clusters tab's submit form and from `slurm submit --no-repo --upload FILE`, on the real testbed."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.slurm.script import render_preview
from tests.slurm.conftest import clusters_tab, slurm_cli


def _note(tmp_path: Path) -> tuple[Path, str]:
    text = f"uploaded note {secrets.token_hex(6)}"
    note = tmp_path / "note.txt"
    note.write_text(text + "\n")
    return note, text


def test_the_form_builds_a_command_only_submission(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.ui.clusters.submit_form import COMMAND_MODE, REPO_MODE, SubmitForm

    form = SubmitForm()
    qtbot.addWidget(form)
    form.show()
    form.set_profile(ClusterProfile("c", "u@h", "/w", qos="normal"))
    note, _ = _note(tmp_path)
    form.repo_url.setText("/repo.git")  # left behind by the other mode: not sent
    form.overrides.setPlainText("lr=0.1")
    form.mode.setCurrentText(COMMAND_MODE)
    assert not form.repo_url.isVisible() and not form.overrides.isVisible() and form.uploads.isVisible()
    form.add_uploads([str(note), str(note)])  # listed once
    form.command.setText("cat note.txt")
    form.time_limit.setText("00:05:00")
    form.constraint.setText("a100")
    submission = form.submission()
    assert submission.no_repo and submission.repo_url == "" and submission.overrides == ()
    assert submission.uploads == ((str(note), "note.txt"),)
    assert submission.command == ("cat", "note.txt")
    script = render_preview(submission, ClusterProfile("c", "u@h", "/w", qos="normal"))
    assert "git clone" not in script
    assert "# Uploaded into this folder before sbatch ran: note.txt\n" in script
    assert "#SBATCH --qos=normal" in script and "#SBATCH --constraint=a100" in script
    assert "\ncat note.txt &\n" in script
    form.mode.setCurrentText(REPO_MODE)
    assert form.repo_url.isVisible() and not form.uploads.isVisible()
    assert form.submission().uploads == () and not form.submission().no_repo


@pytest.mark.slurm
def test_the_clusters_tab_sends_a_command_with_an_uploaded_file(  # type: ignore[no-untyped-def]
    qtbot, testbed, profile, tmp_path
) -> None:
    from msquant_desktop.domain.jobs import JobState
    from msquant_desktop.ui.clusters.submit_form import COMMAND_MODE

    services, window, tab = clusters_tab(qtbot, tmp_path, profile)
    try:
        note, text = _note(tmp_path)
        form = tab.form
        form.mode.setCurrentText(COMMAND_MODE)
        form.add_uploads([str(note)])
        form.command.setText("cat note.txt")
        form.job_name.setText("command-only")
        form.time_limit.setText("00:05:00")
        form.preview_button.click()
        preview = form.preview.toPlainText()
        assert "# Uploaded into this folder before sbatch ran: note.txt" in preview, preview
        assert "git clone" not in preview
        form.submit_button.click()
        jobs = tab.jobs_model
        qtbot.waitUntil(
            lambda: jobs.rowCount() == 1 and jobs.index(0, 4).data() == "COMPLETED", timeout=60_000
        )
        (job,) = services.clusters.repo.list_jobs()
        assert job.state is JobState.COMPLETED, (job.reason, job.result)
        remote = Path(str(job.result["remote_run_dir"]))  # the testbed's workspace is on this machine
        assert (remote / "note.txt").read_text() == text + "\n"
        assert text in (remote / "slurm.log").read_text()
    finally:
        window.close()
        services.shutdown()


@pytest.mark.slurm
def test_slurm_submit_no_repo_uploads_and_runs(testbed, profile, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = slurm_cli(tmp_path, profile)
    note, text = _note(tmp_path)
    spaced = tmp_path / "my note.txt"
    spaced.write_text("x")
    for args, words in (
        (
            ("--upload", str(tmp_path / "absent.txt")),
            f"slurm: uploads[0]: {tmp_path / 'absent.txt'} is not a file here",
        ),
        (
            ("--upload", str(spaced)),
            "slurm: uploads[0]: 'my note.txt' is not a plain file name (letters, digits, . _ + -)",
        ),
        (
            ("--repo", "/r.git", "--commit", "a" * 40, "--upload", str(note)),
            "slurm: --upload is for a command only (--no-repo); a project's files come from its clone",
        ),
        (
            ("--no-repo", "--commit", "a" * 40),
            "slurm: --no-repo runs a command only: leave out --repo and --commit",
        ),
        (("--repo", "/r.git"), "slurm: --repo needs --commit (the full commit hash to run at)"),
    ):
        refused = cli("submit", "testbed", "--name", "refused", *args, "--", "cat", "note.txt")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [words]
    assert json.loads(cli("status", "--json").stdout)["jobs"] == []  # nothing stored, nothing sent
    submitted = cli(
        "submit", "testbed", "--no-repo", "--upload", str(note), "--name", "note", "--", "cat", "note.txt"
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[1].rstrip(":")
    followed = cli("logs", job_id, "--follow", "--poll", "1")
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert text in followed.stdout
    deadline = time.monotonic() + 20
    while True:
        (status,) = json.loads(cli("status", "--json").stdout)["jobs"]
        if status["state"] == "COMPLETED" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["state"] == "COMPLETED"
