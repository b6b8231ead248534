"""The Clusters tab on the real testbed: connects, shows free GPUs, previews and submits a job.

With MSQUANT_SCREENSHOT=PATH it also saves a picture of the tab (docs/clusters.png is made so).
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from tests.slurm.conftest import clusters_tab

pytestmark = pytest.mark.slurm


def test_clusters_tab_connected_to_the_testbed(qtbot, testbed, profile, bare_repo, tmp_path) -> None:  # type: ignore[no-untyped-def]
    limited = dataclasses.replace(
        profile, allowed_partitions=("debug", "big"), allowed_gpu_types=("a100", "h100")
    )
    services, window, tab = clusters_tab(qtbot, tmp_path, limited)
    try:
        assert "testbed: connected" in window.cluster_status.text()
        # how it was reached and which parser read the ssh config are shown
        assert f"{testbed.user}@{testbed.host}:{testbed.port}" in tab.status_label.text()
        assert (
            "ssh config read by OpenSSH_" in tab.status_label.toolTip()
            and "(ssh -G)" in tab.status_label.toolTip()
        )
        repo_path, first, _ = bare_repo
        form = tab.form
        form.repo_url.setText(repo_path)
        form.commit.setText(first)
        form.command.setText("sleep 20")
        form.partition.setCurrentText("big")
        form.gpu_type.setCurrentText("h100")
        form.gpus.setValue(1)
        form.time_limit.setText("00:05:00")
        form.job_name.setText("train-llama")
        form.preview_button.click()
        assert "#SBATCH --gres=gpu:h100:1" in form.preview.toPlainText()
        form.submit_button.click()
        jobs = tab.jobs_model
        qtbot.waitUntil(lambda: jobs.rowCount() == 1 and jobs.index(0, 4).data() == "RUNNING", timeout=20_000)
        tab.refresh_gpus()
        qtbot.waitUntil(
            lambda: tab.gpus.model.rowCount() == 3 and "1 free of 2" in tab.gpus.summary.text(),
            timeout=10_000,
        )
        tab.test_connection()
        qtbot.waitUntil(lambda: "SLURM 22" in tab.test_label.text(), timeout=10_000)
        shot = os.environ.get("MSQUANT_SCREENSHOT")
        if shot:
            window.resize(1280, 800)
            qtbot.wait(200)
            assert window.grab().save(shot)
        job_id = int(jobs.index(0, 0).data())
        services.clusters.cancel(job_id)
        qtbot.waitUntil(lambda: jobs.index(0, 4).data() == "CANCELLED", timeout=20_000)
    finally:
        window.close()
        services.shutdown()
