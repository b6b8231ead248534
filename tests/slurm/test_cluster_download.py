"""Downloading a cluster result (services/cluster_download.py) on the real testbed: the folder
arrives byte for byte, a connection cut mid-file is resumed without sending a byte twice, the CLI
refuses a foreign folder, and the Results view downloads a cluster row and evaluates it on its
cluster.

One real quantization on the testbed per module (`slurm quantize --wait`, W4A16 of the demo model)
gives the result every test here downloads.  With MSQUANT_SCREENSHOT=PATH the view test saves a
picture of the Results view with the cluster row and its Download button, with
MSQUANT_FORM_SCREENSHOT=PATH one of the Evaluate form set up for the cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from msquant_desktop.config.paths import AppPaths, resolve_paths
from msquant_desktop.domain.slurm import ClusterProfile
from msquant_desktop.services.cluster_download import (
    MARKER,
    DownloadCancelled,
    DownloadProgress,
    DownloadSource,
    download_result,
    record_local_copy,
    source_of,
)
from msquant_desktop.slurm.connection import SshConnection, target_for_profile
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import JobRepository, connect
from tests.conftest import run_cli_argv
from tests.quantize.conftest import demo_model  # noqa: F401  (built only when the testbed has no copy)
from tests.slurm.cluster_fixtures import run_slurm
from tests.slurm.cut_proxy import CutProxy

pytestmark = pytest.mark.slurm


@dataclass(frozen=True)
class ClusterResult:
    paths: AppPaths
    profile: ClusterProfile
    model: Path
    out: Path
    job_id: int

    @property
    def prefix(self) -> list[str]:
        return run_cli_argv("--data-dir", str(self.paths.config_dir.parent), "slurm")

    def source(self) -> DownloadSource:
        conn = connect(self.paths.database)
        try:
            return source_of(JobRepository(conn).get(self.job_id))
        finally:
            conn.close()


@pytest.fixture(scope="module")
def cluster_result(testbed, cluster_python, cluster_model, tmp_path_factory) -> ClusterResult:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("cluster-result")
    profile = testbed.profile(testbed.known_hosts(root / "known_hosts"), python=cluster_python)
    paths = resolve_paths(root / "app").ensure()
    save_profiles(paths.clusters_file, [profile])
    out = cluster_model.parent / "out" / f"dl-{secrets.token_hex(4)}"
    result = ClusterResult(paths, profile, cluster_model, out, 1)
    args = ["testbed", "--model", str(cluster_model), "--scheme", "W4A16", "--out", str(out)]
    args += ["--gpu-type", "a100", "--gpus", "1", "--time", "10", "--wait"]
    done = run_slurm(result.prefix, "quantize", paths.clusters_file, *args, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "job 1: COMPLETED" in done.stdout
    return result


def _opener(profile: ClusterProfile, opened: list[SshConnection] | None = None):  # type: ignore[no-untyped-def]
    def open_connection() -> SshConnection:
        connection = SshConnection(target_for_profile(profile, ssh_config=Path("/nonexistent")))
        connection.connect()
        if opened is not None:
            opened.append(connection)
        return connection

    return open_connection


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_cluster_result_arrives_byte_for_byte_and_is_recorded(cluster_result, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = cluster_result.source()
    assert source.label == f"testbed:{cluster_result.out}"
    dest = tmp_path / "copy"
    seen: list[DownloadProgress] = []
    done = download_result(_opener(cluster_result.profile), source, dest, seen.append)
    expected = _tree(cluster_result.out)
    assert _tree(dest) == expected  # every file, byte for byte; no marker or .partial left
    total = sum(len(b) for b in expected.values())
    assert (done.files, done.total, done.copied, done.attempts) == (len(expected), total, total, 1)
    assert seen[-1] == DownloadProgress(total, total, len(expected), len(expected), total)
    assert [p.done for p in seen] == sorted(p.done for p in seen)  # never goes back

    conn = connect(cluster_result.paths.database)
    try:
        record_local_copy(JobRepository(conn), cluster_result.job_id, dest)
    finally:
        conn.close()
    listed = subprocess.run(
        run_cli_argv("--data-dir", str(cluster_result.paths.config_dir.parent), "results", "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(listed.stdout)["results"][0]
    assert (row["cluster"], row["local_copy"]) == ("testbed", str(dest.resolve()))

    # Again into the recorded copy: every file is checked and none is sent again.
    again = download_result(_opener(cluster_result.profile), cluster_result.source(), dest)
    assert again.copied == 0 and _tree(dest) == expected

    # The CLI refuses a folder of something else, one line, and leaves it as it was.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    clusters = cluster_result.paths.clusters_file
    refused = run_slurm(cluster_result.prefix, "download", clusters, "1", "--to", str(foreign))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"{foreign} is not empty and is not an earlier download of job 1: choose an empty or new folder"
    ]
    assert _tree(foreign) == {"notes.txt": b"mine"}


def test_a_cut_mid_file_resumes_without_sending_a_byte_twice(testbed, cluster_result, tmp_path) -> None:  # type: ignore[no-untyped-def]
    expected = _tree(cluster_result.out)
    total = sum(len(b) for b in expected.values())
    biggest = max(len(b) for b in expected.values())
    chunk = 256 * 1024
    assert biggest > 4 * chunk, "the weights must span several pieces for a cut inside them"
    with CutProxy(testbed.port) as proxy:
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {testbed.host_key}\n")
        profile = testbed.profile(known, port=proxy.port)
        opened: list[SshConnection] = []
        cut_after: list[int] = []
        resumed_from: list[int] = []

        def progress(p: DownloadProgress) -> None:
            if not cut_after and p.copied >= biggest // 2:
                cut_after.append(p.copied)
                proxy.cut()  # the network goes; the bytes of this piece are on disk already
            elif cut_after and len(opened) == 2 and not resumed_from:
                resumed_from.append(p.done - (p.copied - cut_after[0]))

        notices: list[str] = []
        done = download_result(
            _opener(profile, opened),
            cluster_result.source(),
            tmp_path / "copy",
            progress,
            notice=notices.append,
            chunk=chunk,
        )
        assert cut_after and proxy.cuts == 1
    assert len(opened) == done.attempts == 2
    assert len(notices) == 1 and "resuming in 1 s" in notices[0], notices
    assert _tree(tmp_path / "copy") == expected
    # Every byte crossed the network once: the second connection went on from what was on disk.
    assert done.copied == total
    assert resumed_from == [cut_after[0]]


def test_a_cancelled_download_stops_and_the_next_one_goes_on_from_there(cluster_result, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chunk = 256 * 1024
    dest = tmp_path / "copy"
    stop = threading.Event()
    stopped_at: list[int] = []

    def progress(p: DownloadProgress) -> None:
        if p.copied >= 2 * chunk and not stop.is_set():
            stop.set()
            stopped_at.append(p.copied)

    with pytest.raises(DownloadCancelled):
        download_result(
            _opener(cluster_result.profile), cluster_result.source(), dest, progress, stop, chunk=chunk
        )
    assert json.loads((dest / MARKER).read_text()) == {
        "cluster": "testbed",
        "output": str(cluster_result.out),
    }
    assert list(dest.glob("*.partial"))  # the file it was in stays, to be continued
    done = download_result(_opener(cluster_result.profile), cluster_result.source(), dest, chunk=chunk)
    expected = _tree(cluster_result.out)
    assert _tree(dest) == expected
    assert done.copied == sum(len(b) for b in expected.values()) - stopped_at[0]


def test_the_results_row_of_a_cluster_result_downloads_and_evaluates_on_its_cluster(  # type: ignore[no-untyped-def]
    qtbot, cluster_result, tmp_path
) -> None:
    from PySide6.QtWidgets import QWidget

    from msquant_desktop.app import create_services
    from msquant_desktop.domain.jobs import JobKind, JobState
    from msquant_desktop.ui.quantize.install import QuantizeUi
    from msquant_desktop.ui.quantize.results_view import COLUMNS

    services = create_services(cluster_result.paths)
    host = QWidget()
    qtbot.addWidget(host)
    ui = QuantizeUi(services.quantize, host, services.clusters)
    view = ui.results
    qtbot.addWidget(view)
    try:
        rows = view.model.rows
        assert [(r.job_id, r.cluster, r.result.output) for r in rows] == [
            (1, "testbed", str(cluster_result.out))
        ]
        output_column = COLUMNS.index("Output")
        # (an earlier test of this module may have recorded a copy already)
        assert view.model.data(view.model.index(0, output_column)).startswith(f"testbed:{cluster_result.out}")
        view.table.selectRow(0)
        if view.model.rows[0].local_exists:  # Open folder, once a copy is here
            assert view.download_button.isHidden() and not view.open_button.isHidden()
        else:  # Download… in its place until then
            assert not view.download_button.isHidden() and view.download_button.isEnabled()
            assert view.open_button.isHidden()
        assert "Evaluate on testbed" in view.evaluate_button.toolTip() and view.evaluate_button.isEnabled()

        # Download…: off the GUI thread, progress in the strip, the copy recorded on the row.
        dest = tmp_path / "gui-copy"
        view.download_selected(dest)
        assert not view.download_strip.isHidden() and not view.download_button.isEnabled()
        qtbot.waitUntil(lambda: view.download_strip.detail_label.text().startswith("done"), timeout=60_000)
        assert _tree(dest) == _tree(cluster_result.out) and not (dest / MARKER).exists()
        qtbot.waitUntil(lambda: view.model.rows[0].local_copy == str(dest.resolve()), timeout=10_000)
        assert view.open_button.isEnabled() and view.verify_button.isEnabled()
        assert not view.open_button.isHidden() and view.download_button.isHidden()
        assert view.model.data(view.model.index(0, output_column)).endswith(f"(copy in {dest.resolve()})")

        # Evaluate on cluster…: the form on the cluster with its paths there, sent as a SLURM job.
        view.evaluate_button.click()
        dialog = ui.evaluate_dialog
        assert dialog is not None
        assert dialog.cluster_target.cluster() == "testbed"
        assert dialog.model_edit.text() == str(cluster_result.out)
        assert dialog.original_edit.text() == str(cluster_result.model)  # from the quantize job's spec
        assert dialog.model_browse.isHidden() and dialog.worker_label.isHidden()
        dialog.choose_target(None)  # this computer: the downloaded copy, no cluster path as original
        assert (dialog.model_edit.text(), dialog.original_edit.text()) == (str(dest.resolve()), "")
        assert not dialog.model_browse.isHidden()
        dialog.choose_target("testbed")
        assert (dialog.model_edit.text(), dialog.original_edit.text()) == (
            str(cluster_result.out),
            str(cluster_result.model),
        )
        dialog.seq_len_spin.setValue(16)
        dialog.windows_spin.setValue(8)  # a few seconds of scoring on the testbed's CPUs
        dialog.speed_box.setChecked(False)
        qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
        assert "llmcompressor 0." in dialog.cluster_target.status_label.text()
        form_shot = os.environ.get("MSQUANT_FORM_SCREENSHOT")  # docs/evaluate-on-cluster.png is made so
        if form_shot:
            dialog.resize(760, 640)
            qtbot.wait(200)
            assert dialog.grab().save(form_shot)
        with qtbot.waitSignal(dialog.sig_submitted, timeout=10_000) as submitted:
            dialog.start_button.click()
        job_id = submitted.args[0]
        record = services.clusters.repo.get(job_id)
        assert (record.spec.kind, record.spec.cluster) == (JobKind.EVALUATE, "testbed")
        assert record.spec.meta["evaluates"] == 1
        asked = record.spec.meta["evaluate"]
        assert (asked["model"], asked["original"]) == (str(cluster_result.out), str(cluster_result.model))
        qtbot.waitUntil(lambda: services.clusters.repo.get(job_id).state.is_final, timeout=120_000)
        ended = services.clusters.repo.get(job_id)
        assert ended.state is JobState.COMPLETED, (ended.reason, ended.result)
        qtbot.waitUntil(lambda: view.model.rows[0].evaluated is not None, timeout=20_000)
        assert view.model.rows[0].evaluated["perplexity"] > 1.0  # type: ignore[index]
        shot = os.environ.get("MSQUANT_SCREENSHOT")  # docs/results-cluster.png is made so
        if shot:
            view.table.selectRow(0)
            view.resize(1200, 460)
            view.show()
            qtbot.wait(300)
            assert view.grab().save(shot)
    finally:
        services.shutdown()
