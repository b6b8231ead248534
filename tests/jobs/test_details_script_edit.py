"""A SLURM job sent with an edited preview says so in its Details page, with the diff."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QLabel

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services import cluster_jobs
from msquant_desktop.slurm.script import edit_diff, render_preview
from msquant_desktop.store import JobRepository, connect
from msquant_desktop.ui.jobs.details import JobDetails


def test_an_edited_script_is_flagged_with_its_diff_in_the_details(make_engine, app_paths, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    profile = ClusterProfile(name="c", host="h", workspace="/w")
    base = SlurmSubmission(
        cluster="c", job_name="t", repo_url="/r.git", commit="0123abcd" * 5, command=("python", "a.py")
    )
    edited = render_preview(base, profile).replace("python a.py", "python a.py --edited")
    submission = dataclasses.replace(base, edited_script=edited)
    conn = connect(app_paths.database)
    try:
        job = cluster_jobs.create_job(
            JobRepository(conn), app_paths.runs_dir, submission, script_diff=edit_diff(submission, profile)
        )
    finally:
        conn.close()
    details = JobDetails(service)
    qtbot.addWidget(details)
    details.show()
    details.show_job(job.id)
    details.tabs.setCurrentIndex(1)  # Details
    labels = [w.text() for w in details.info.findChildren(QLabel)]
    (row,) = [text for text in labels if text.startswith("edited in the preview before sending")]
    assert "-python a.py &\n+python a.py --edited &" in row
