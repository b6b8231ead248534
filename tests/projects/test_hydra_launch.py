"""Real local launches of Hydra projects in their own venvs: the config stored with a job is the one
its own Hydra wrote (`.hydra/config.yaml`), composed from the exact commit (+ the snapshot), and a
sweep runs as one job per member through the queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState, JobTarget


@pytest.fixture
def services(app_paths, qapp):  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_services

    s = create_services(app_paths)
    yield s
    for job_id in s.jobs.local_active_ids():  # type: ignore[attr-defined]
        s.jobs.cancel(job_id)  # type: ignore[attr-defined]
    s.shutdown()


def add(qtbot, services, folder: Path) -> int:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(services.projects.sig_layout_ready, timeout=120_000) as ready:
        services.projects.add_project(str(folder))
    return int(ready.args[0])


def prepare(qtbot, services, project_id: int, entry: str, overrides: list[str], **kw):  # type: ignore[no-untyped-def]
    launcher = services.project_launcher
    answers: list[object] = []
    launcher.sig_plan_ready.connect(answers.append)
    launcher.sig_plan_failed.connect(answers.append)
    try:
        launcher.prepare(project_id, entry, overrides, JobTarget.LOCAL, **kw)
        qtbot.waitUntil(lambda: bool(answers), timeout=120_000)
    finally:
        launcher.sig_plan_ready.disconnect(answers.append)
        launcher.sig_plan_failed.disconnect(answers.append)
    assert not isinstance(answers[0], str), answers[0]
    return answers[0]


def prepare_fails(qtbot, services, project_id: int, entry: str, overrides: list[str], **kw) -> str:  # type: ignore[no-untyped-def]
    launcher = services.project_launcher
    with qtbot.waitSignal(launcher.sig_plan_failed, timeout=120_000) as failed:
        launcher.prepare(project_id, entry, overrides, JobTarget.LOCAL, **kw)
    return str(failed.args[0])


def launch(qtbot, services, plan) -> list[int]:  # type: ignore[no-untyped-def]
    launcher = services.project_launcher
    with qtbot.waitSignal(launcher.sig_launched_jobs, timeout=60_000) as launched:
        launcher.launch(plan)
    ids = list(launched.args[0])
    jobs = services.jobs
    qtbot.waitUntil(lambda: all(jobs.get(i).state.is_final for i in ids), timeout=240_000)
    return ids


def log_of(services, job_id: int) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(text for text, _err in services.jobs.log_tail(job_id, 500)[0])


def hydra_written_config(run_dir: str) -> str:
    """The `.hydra/config.yaml` the job's own Hydra wrote in its output folder."""
    found = sorted(Path(run_dir, "src").rglob(".hydra/config.yaml"))
    assert len(found) == 1, found
    return found[0].read_text()


def test_stored_config_is_what_ran_from_the_commit_and_snapshot(
    qtbot, services, lightning_project: Path
) -> None:  # type: ignore[no-untyped-def]
    project_id = add(qtbot, services, lightning_project)
    venv_python = str(lightning_project / ".venv" / "bin" / "python")
    assert services.projects.environment(project_id).python == venv_python
    # An uncommitted edit of a config file: without the snapshot the run never sees it...
    data = lightning_project / "configs" / "data" / "mnist.yaml"
    data.write_text(data.read_text().replace("batch_size: 128", "batch_size: 999"))
    overrides = ["experiment=example", "model.net.lin1_size=7", "+note='two words, one arg'"]
    plan = prepare(qtbot, services, project_id, "python src/train.py", overrides)
    assert plan.command[:2] == (venv_python, "src/train.py") and plan.python == venv_python
    assert "batch_size: 128" in plan.composed_config
    (clean,) = launch(qtbot, services, plan)
    record = services.jobs.get(clean)
    assert record.state is JobState.COMPLETED, log_of(services, clean)
    assert f"PYTHON {venv_python}" in log_of(services, clean)
    assert record.spec.meta["composed_config"] == hydra_written_config(record.run_dir)
    assert record.spec.meta["overrides"] == overrides

    # ...with it, the stored config has the edit, exactly as the run's own Hydra composed it.
    plan = prepare(qtbot, services, project_id, "python src/train.py", overrides, include_snapshot=True)
    assert plan.patch and "batch_size: 999" in plan.composed_config
    (dirty,) = launch(qtbot, services, plan)
    record = services.jobs.get(dirty)
    assert record.state is JobState.COMPLETED, log_of(services, dirty)
    assert record.spec.meta["composed_config"] == hydra_written_config(record.run_dir)
    assert "batch_size: 999" in record.spec.meta["composed_config"]


def test_a_2x2_sweep_runs_as_4_local_jobs_through_the_queue(qtbot, services, lightning_project: Path) -> None:  # type: ignore[no-untyped-def]
    project_id = add(qtbot, services, lightning_project)
    plan = prepare(
        qtbot,
        services,
        project_id,
        "python src/train.py",
        ["data.batch_size=32,64", "model.lr=0.1,0.2", "seed=1"],
    )
    assert plan.sweep_mode == "members" and len(plan.members) == 4
    ids = launch(qtbot, services, plan)
    assert len(ids) == 4
    records = [services.jobs.get(i) for i in ids]
    assert [r.spec.meta["overrides"] for r in records] == [
        ["data.batch_size=32", "model.lr=0.1", "seed=1"],
        ["data.batch_size=32", "model.lr=0.2", "seed=1"],
        ["data.batch_size=64", "model.lr=0.1", "seed=1"],
        ["data.batch_size=64", "model.lr=0.2", "seed=1"],
    ]
    sweep_ids = {r.spec.meta["sweep"]["id"] for r in records}
    assert len(sweep_ids) == 1 and [r.spec.meta["sweep"]["index"] for r in records] == [0, 1, 2, 3]
    for record in records:
        assert record.state is JobState.COMPLETED, log_of(services, record.id)
        assert record.spec.meta["sweep"]["size"] == 4
        assert "--multirun" not in record.spec.argv and record.spec.argv[-3:] == tuple(
            record.spec.meta["overrides"]
        )
        assert record.spec.meta["composed_config"] == hydra_written_config(record.run_dir)
    # The queue's limit (one local job at a time by default) held: each started after the last ended.
    for earlier, later in zip(records, records[1:], strict=False):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at


def test_a_sweep_set_inside_a_config_is_split_by_hydra(qtbot, services, lightning_project: Path) -> None:  # type: ignore[no-untyped-def]
    project_id = add(qtbot, services, lightning_project)
    plan = prepare(
        qtbot, services, project_id, "python src/train.py", ["hparams_search=mnist_grid"], multirun=True
    )
    assert plan.sweep_mode == "members"
    assert [m.overrides for m in plan.members] == [
        ("model.lr=0.001", "data.batch_size=32", "hparams_search=mnist_grid"),
        ("model.lr=0.001", "data.batch_size=64", "hparams_search=mnist_grid"),
        ("model.lr=0.01", "data.batch_size=32", "hparams_search=mnist_grid"),
        ("model.lr=0.01", "data.batch_size=64", "hparams_search=mnist_grid"),
    ]
    assert "lr: 0.01" in plan.members[3].composed_config
    services.project_launcher.discard(plan)

    # A value given on the command line replaces the config's sweep of that key, as in Hydra.
    plan = prepare(
        qtbot,
        services,
        project_id,
        "python src/train.py",
        ["hparams_search=mnist_grid", "model.lr=0.5"],
        multirun=True,
    )
    assert [m.overrides for m in plan.members] == [
        ("model.lr=0.5", "data.batch_size=32", "hparams_search=mnist_grid"),
        ("model.lr=0.5", "data.batch_size=64", "hparams_search=mnist_grid"),
    ]
    services.project_launcher.discard(plan)

    # An optimizing sweeper whose plugin the project's Python lacks: refused in one line, nothing runs.
    failed = prepare_fails(
        qtbot, services, project_id, "python src/train.py", ["hparams_search=mnist_optuna"], multirun=True
    )
    assert "OptunaSweeper (hydra.sweeper._target_) is not installed in" in failed and "\n" not in failed


def test_a_project_pinned_to_hydra_1_1_launches_in_its_python(
    qtbot, services, audiocraft_project: Path
) -> None:  # type: ignore[no-untyped-def]
    project_id = add(qtbot, services, audiocraft_project)
    plan = prepare(
        qtbot, services, project_id, "python audiocraft/train.py", ["solver=musicgen/musicgen_base_32khz"]
    )
    (job_id,) = launch(qtbot, services, plan)
    record = services.jobs.get(job_id)
    assert record.state is JobState.COMPLETED, log_of(services, job_id)
    assert "HYDRA 1.1.2" in log_of(services, job_id)
    assert record.spec.meta["composed_config"] == hydra_written_config(record.run_dir)
    assert "sample_rate: 32000" in record.spec.meta["composed_config"]
