"""The Clusters tab's tables update row by row (no testbed needed): the free-GPU table fed by the
recorded real `scontrol show node` outputs through the real parser, and the SLURM job table fed by
real job records that the real ClusterService changes in a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.slurm.gpus import gpu_view
from msquant_desktop.slurm.parsers import parse_nodes

FIXTURES = Path(__file__).parent / "fixtures"


def _nodes(name: str):  # type: ignore[no-untyped-def]
    return parse_nodes((FIXTURES / name).read_bytes())


def _watch(model: Any) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"reset": [], "inserted": [], "removed": [], "changed": []}
    model.modelReset.connect(lambda: seen["reset"].append(True))
    model.rowsInserted.connect(lambda _p, first, last: seen["inserted"].append((first, last)))
    model.rowsRemoved.connect(lambda _p, first, last: seen["removed"].append((first, last)))
    model.dataChanged.connect(lambda a, b, _r: seen["changed"].append((a.row(), b.row())))
    return seen


def _clear(seen: dict[str, list[Any]]) -> None:
    for events in seen.values():
        events.clear()


def test_gpu_table_updates_changed_nodes_inserts_new_and_removes_gone_ones(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    from msquant_desktop.ui.clusters.gpu_panel import GpuPanel

    panel = GpuPanel()
    qtbot.addWidget(panel)
    model = panel.model
    seen = _watch(model)
    busy, drain, no_gres = (
        _nodes("scontrol_show_node_busy.txt"),
        _nodes("scontrol_show_node_drain.txt"),
        _nodes("scontrol_show_node_nogres.txt"),
    )
    panel.show_view(gpu_view(busy, []))
    assert seen == {"reset": [], "inserted": [(0, 2)], "removed": [], "changed": []}
    assert [model.data(model.index(r, 0)) for r in range(3)] == ["node1", "node2", "node2"]
    assert model.data(model.index(0, 6)) == "0" and model.data(model.index(2, 5)) == "2"

    _clear(seen)
    panel.show_view(gpu_view(busy, []))  # a poll where nothing changed
    assert seen == {"reset": [], "inserted": [], "removed": [], "changed": []}

    panel.show_view(gpu_view(drain, []))  # node1 freed a GPU, node2 drained: same rows, new values
    assert seen == {"reset": [], "inserted": [], "removed": [], "changed": [(0, 2)]}
    assert model.data(model.index(0, 6)) == "1" and model.data(model.index(1, 1)) == "IDLE+DRAIN"
    assert model.data(model.index(1, 0), Qt.ItemDataRole.ToolTipRole).startswith(
        "excluded: IDLE+DRAIN (fan broken"
    )

    _clear(seen)
    panel.show_view(gpu_view(drain + no_gres, []))  # a node appears
    assert seen == {"reset": [], "inserted": [(3, 3)], "removed": [], "changed": []}
    assert model.data(model.index(3, 3)) == "(untyped)"

    _clear(seen)
    panel.show_view(gpu_view(busy, []))  # it is gone again, and the others changed back
    assert seen == {"reset": [], "inserted": [], "removed": [(3, 3)], "changed": [(0, 2)]}
    assert model.rowCount() == 3 and "By type" in panel.summary.text()


def test_gpu_summary_shows_what_of_the_pending_demand_could_start_now(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The recorded demand (tests/slurm/test_demand_recorded.py counts it): 6 h100 wanted, 2 of them
    could start now (an array at its %2 throttle holds the rest back)."""
    from msquant_desktop.slurm.parsers import parse_squeue_demand
    from msquant_desktop.ui.clusters.gpu_panel import GpuPanel, pending_words

    panel = GpuPanel()
    qtbot.addWidget(panel)
    demand = parse_squeue_demand((FIXTURES / "squeue_demand.txt").read_bytes())
    panel.show_view(gpu_view(_nodes("scontrol_show_node_busy.txt"), demand, running_in_array={"12": 2}))
    assert "h100: 0 free of 2, 6 wanted by pending jobs (2 could start now)" in panel.summary.text()
    truncated = parse_squeue_demand((FIXTURES / "squeue_demand_truncated.txt").read_bytes())
    # A task list squeue cut short: the demand is a lower bound, and says so.
    assert (
        pending_words(gpu_view([], truncated), "")
        == ", at least 38 wanted by pending jobs (38 could start now)"
    )


def test_slurm_job_table_updates_one_row_per_changed_job(qtbot, app_paths, qapp) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.services import cluster_jobs
    from msquant_desktop.services.cluster_service import ClusterService
    from msquant_desktop.services.job_service import JobService
    from msquant_desktop.services.settings_service import SettingsService
    from msquant_desktop.store import connect
    from msquant_desktop.store.jobs_repo import JobRepository
    from msquant_desktop.ui.clusters_tab import ClustersTab

    conn = connect(app_paths.database)
    clusters = ClusterService(conn, app_paths.runs_dir, app_paths.clusters_file)  # no profiles
    jobs = JobService(JobRepository(conn), app_paths, SettingsService(app_paths.settings_file), gpu_count=0)

    def submission(name: str) -> SlurmSubmission:
        return SlurmSubmission(
            cluster="c1", job_name=name, repo_url="/r.git", commit="a" * 40, command=("true",)
        )

    first = cluster_jobs.create_job(clusters.repo, app_paths.runs_dir, submission("first"))
    second = cluster_jobs.create_job(clusters.repo, app_paths.runs_dir, submission("second"))
    tab = ClustersTab(clusters, jobs=jobs)
    qtbot.addWidget(tab)
    model = tab.jobs_model
    assert [model.data(model.index(r, 1)) for r in range(2)] == ["second", "first"]  # newest first
    seen = _watch(model)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        clusters.cancel(first.id)  # not submitted yet: CANCELLED at once, announced by the service
        assert clusters.repo.get(first.id).state is JobState.CANCELLED
        assert seen == {"reset": [], "inserted": [], "removed": [], "changed": [(1, 1)]}
        assert model.data(model.index(1, 4)) == "CANCELLED" and model.data(model.index(0, 4)) == "STARTING"
        assert not [s for s in statements if "LIMIT" in s]  # the list is not read again

        _clear(seen)
        third = cluster_jobs.create_job(clusters.repo, app_paths.runs_dir, submission("third"))
        clusters.cancel(third.id)  # its first announcement: a new row at the top
        assert seen == {"reset": [], "inserted": [(0, 0)], "removed": [], "changed": []}
        assert model.data(model.index(0, 1)) == "third" and model.rowCount() == 3

        _clear(seen)
        jobs.delete(third.id)  # deleted in the Jobs tab
        assert seen == {"reset": [], "inserted": [], "removed": [(0, 0)], "changed": []}

        _clear(seen)
        tab.reload_jobs()  # a full read that finds what is shown: no signal at all
        assert seen == {"reset": [], "inserted": [], "removed": [], "changed": []}
    finally:
        conn.set_trace_callback(None)
    tab.jobs.selectRow(0)
    assert tab.jobs_model.job_id_at(tab.jobs.selectionModel().selectedRows()[0].row()) == second.id
    clusters.shutdown()
    jobs.shutdown()
    conn.close()
