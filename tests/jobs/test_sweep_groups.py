"""A sweep's jobs in the Jobs tab: one header row "sweep <id>: N members, k done, j failed" over its
members' own rows, counted over every member whatever the filter shows, folded by a double-click,
kept up to date as real member jobs run, fail and wait in the queue."""

from __future__ import annotations

import time
from contextlib import closing

from PySide6.QtCore import Qt

from msquant_desktop.domain.jobs import JobSpec, JobState, JobTarget
from msquant_desktop.store import JobRepository, connect
from msquant_desktop.store.projects_repo import ProjectRepository
from msquant_desktop.ui.jobs.sweep_groups import MEMBER_INDENT, SWEEP_ROLE
from msquant_desktop.ui.jobs.table_model import JOB_ID_ROLE, Column
from msquant_desktop.ui.jobs_tab import JobsTab
from tests.jobs.conftest import wait_final

MEMBER_COMMANDS = (("sh", "-c", "exit 0"), ("sh", "-c", "exit 3"), ("sleep", "300"), ("sh", "-c", "exit 0"))


def _names(tab: JobsTab) -> list[str]:
    model = tab.table.model()
    return [str(model.index(row, Column.NAME).data()) for row in range(model.rowCount())]


def test_a_sweep_is_one_group_with_each_members_state(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=1, grace=0.2)
    project = ProjectRepository(service._repo.connection).add("demo", "/nonexistent/demo")
    plain = service.submit(JobSpec(name="plain", argv=("sh", "-c", "exit 0")))
    wait_final(qtbot, service, plain.id)
    members = service.submit_many(
        [
            JobSpec(
                name=f"demo [{i + 1}/4]",
                argv=argv,
                project_id=project.id,
                meta={
                    "project_name": "demo",
                    "sweep": {"id": "ab12", "index": i, "size": 4, "mode": "members"},
                },
            )
            for i, argv in enumerate(MEMBER_COMMANDS)
        ]
    )
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.show()
    running = members[2].id
    qtbot.waitUntil(lambda: service.get(running).state is JobState.RUNNING, timeout=20_000)
    head = "sweep ab12: 4 members, 1 done, 1 failed, 1 running, 1 queued"
    qtbot.waitUntil(lambda: _names(tab)[0] == head, timeout=10_000)
    assert _names(tab) == [
        head,
        *(MEMBER_INDENT + f"demo [{i}/4]" for i in (4, 3, 2, 1)),  # newest first, under the header
        "plain",
    ]
    model = tab.table.model()
    header = model.index(0, Column.STATUS)
    assert header.data(SWEEP_ROLE) == "ab12" and header.data(JOB_ID_ROLE) is None
    assert header.data() == "▾ Sweep" and model.index(0, Column.PROJECT).data() == "demo"
    assert [model.index(r, 0).data(JOB_ID_ROLE) for r in range(1, 6)] == [
        *(m.id for m in reversed(members)),
        plain.id,
    ]
    assert model.index(2, Column.STATUS).data() == "Running"  # the member's own state, its own row

    # The header row is no job: selecting it selects none; a member row is its job.
    tab.table.selectRow(0)
    assert tab.selected_job_id() is None
    tab.select_job(members[1].id)
    assert tab.selected_job_id() == members[1].id

    # The filter shows the failed member alone under its header; the counts still cover all four.
    tab.proxy.set_group("Failed")  # (a burst of row changes below: applied by the end of the turn)
    qtbot.waitUntil(lambda: _names(tab) == [head, MEMBER_INDENT + "demo [2/4]"], timeout=5_000)
    tab.proxy.set_group("All")
    qtbot.waitUntil(lambda: len(_names(tab)) == 6, timeout=5_000)
    tab.select_job(members[1].id)
    assert tab.selected_job_id() == members[1].id

    # Folded by a double-click on the header, unfolded by another.
    tab.table.doubleClicked.emit(header)
    assert _names(tab) == [head, "plain"] and model.index(0, Column.STATUS).data() == "▸ Sweep"
    tab.table.doubleClicked.emit(model.index(0, 0))
    assert len(_names(tab)) == 6

    # The running member is cancelled; the last one runs: the header follows each change.
    service.cancel(running)
    wait_final(qtbot, service, members[3].id)
    qtbot.waitUntil(
        lambda: _names(tab)[0] == "sweep ab12: 4 members, 2 done, 1 failed, 1 cancelled", timeout=10_000
    )
    assert model.index(0, Column.STATUS).data(Qt.ItemDataRole.DecorationRole) is not None


def test_a_sweep_run_as_a_job_array_heads_a_row_per_task(make_engine, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine()
    project = ProjectRepository(service._repo.connection).add("demo", "/nonexistent/demo")
    members = [["lr=0.1"], ["lr=0.2"], ["lr=0.3"]]
    spec = JobSpec(
        name="demo @ 1234abcd",
        argv=("python", "train.py"),
        target=JobTarget.SLURM,
        cluster="lab",
        project_id=project.id,
        meta={"project_name": "demo", "submission": {"array": "0-2", "task_overrides": members}},
    )
    clusters = service._repo  # the Clusters area writes through the same store
    job = clusters.create(spec, JobState.STARTING)
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.show()
    assert _names(tab) == [
        f"▾ demo @ 1234abcd · sweep #{job.id}: 3 members, 0 done, 0 failed, 3 queued",
        *(MEMBER_INDENT + f"task ?_{i}" for i in range(3)),
    ]
    tasks = {"0": {"state": "COMPLETED"}, "1": {"state": "FAILED", "exit_code": 3}, "2": {"state": "RUNNING"}}
    clusters.transition(job.id, JobState.QUEUED, slurm_job_id="46")
    clusters.update(job.id, result={"array": "0-2", "tasks": tasks})
    clusters.transition(job.id, JobState.RUNNING)
    head = "▾ demo @ 1234abcd · sweep 46: 3 members, 1 done, 1 failed, 1 running"
    qtbot.waitUntil(lambda: _names(tab)[0] == head, timeout=10_000)
    model = tab.table.model()
    assert [model.index(r, Column.STATUS).data() for r in range(1, 4)] == ["Completed", "Failed", "Running"]
    assert _names(tab)[1:] == [MEMBER_INDENT + f"task 46_{i}" for i in range(3)]
    # A task's row stands for its array job; the array's row folds its tasks.
    tab.table.selectRow(2)
    assert tab.selected_job_id() == job.id
    tab.table.doubleClicked.emit(model.index(0, Column.NAME))
    assert len(_names(tab)) == 1 and _names(tab)[0].startswith("▸ demo")


def test_a_search_over_thousands_of_rows_regroups_once_and_keeps_the_selection(
    make_engine, qtbot, app_paths
) -> None:  # type: ignore[no-untyped-def]
    specs = [JobSpec(name=("odd" if i % 2 else "even") + f"-{i}", argv=("true",)) for i in range(3000)]
    with closing(connect(app_paths.database)) as conn:  # history from before the app started
        records = JobRepository(conn).create_many(specs, JobState.COMPLETED)
    service = make_engine()
    tab = JobsTab(service)
    qtbot.addWidget(tab)
    tab.select_job(records[1].id)  # an "odd" job
    layouts: list[int] = []
    tab.groups.layoutChanged.connect(lambda *_: layouts.append(1))
    started = time.perf_counter()
    tab.search.setText("odd")  # 1,500 ranges of rows leave the filter, one at a time
    qtbot.waitUntil(lambda: tab.table.model().rowCount() == 1500, timeout=10_000)
    assert time.perf_counter() - started < 15.0  # (one pass: a pass per range took minutes)
    assert layouts == [1]  # the burst became one layout change, not 1,500 removes
    assert tab.selected_job_id() == records[1].id  # still selected, on its new row
