"""Hydra discovery by convention and composition (Hydra's own messages, in a child process) and the
form's pure rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.projects import (
    OverrideError,
    build_command,
    build_overrides,
    launch_warnings,
    parse_override_lines,
    split_prefill,
)
from msquant_desktop.projects import git as g
from msquant_desktop.projects.hydra_config import HydraError, compose
from msquant_desktop.projects.hydra_config import discover as discover_project
from tests.projects.conftest import SampleRepo


def discover(root: Path, configured_dir: str | None = None, primary: str | None = None):  # type: ignore[no-untyped-def]
    found = discover_project(root, config_dir=configured_dir, config_name=primary)
    if found.problem:
        raise HydraError(found.problem)
    return found.layout


def test_discovery_finds_groups_options_and_defaults(sample_repo: SampleRepo) -> None:
    layout = discover(sample_repo.work)
    assert layout is not None and layout.source == "convention"  # no entry point: conf/ by convention
    assert layout.config_dir == str(sample_repo.work / "conf")
    assert layout.primary == "config"
    assert [(g.key, g.options, g.default) for g in layout.groups] == [
        ("model", ("large", "small"), "small"),
        ("trainer", ("default", "fast"), "default"),
    ]


def test_project_without_hydra_has_no_layout(tmp_path: Path) -> None:
    assert discover(tmp_path) is None
    with pytest.raises(HydraError, match="does not exist"):
        discover(tmp_path, "nope")


def test_compose_with_valid_overrides_nested_keys(sample_repo: SampleRepo) -> None:
    layout = discover(sample_repo.work)
    text = compose(layout, ["model=large", "trainer.opt.lr=0.5", "+data.workers=4"]).yaml
    assert "hidden: 512" in text and "lr: 0.5" in text and "workers: 4" in text and "name: sgd" in text


@pytest.mark.parametrize(
    ("override", "hydra_says"),
    [
        ("model=huge", "Could not find 'model/huge'"),
        ("nokey=3", "Could not override 'nokey'"),
        ("data.batch=[1,2", "no viable alternative"),
    ],
)
def test_compose_refuses_invalid_overrides_with_hydras_message(
    sample_repo: SampleRepo, override: str, hydra_says: str
) -> None:
    with pytest.raises(HydraError, match=hydra_says.replace("[", r"\[")):
        compose(discover(sample_repo.work), [override])


def test_compose_in_a_child_process(sample_repo: SampleRepo) -> None:
    layout = discover(sample_repo.work)
    assert layout.env.is_fallback  # no .venv: this app's own Python, said so
    assert "epochs: 1" in compose(layout, ["trainer=fast"]).yaml
    with pytest.raises(HydraError, match="Available options in 'model'"):
        compose(layout, ["model=huge"])


def test_overrides_from_pickers_and_free_lines(sample_repo: SampleRepo) -> None:
    layout = discover(sample_repo.work)
    choices = {"model": "large", "trainer": "default"}  # trainer is the default: no override
    free = "# comments and blank lines are skipped\n\ntrainer.opt.lr=0.5\nname='a b;$(rm -rf /)'\n"
    overrides = build_overrides(layout, choices, free)
    assert overrides == ["model=large", "trainer.opt.lr=0.5", "name='a b;$(rm -rf /)'"]
    entry = f"{sys.executable} train.py --flag 'two words'"
    assert build_command(entry, overrides) == (
        sys.executable,
        "train.py",
        "--flag",
        "two words",
        *overrides,
    )
    assert split_prefill(layout, overrides) == ({"model": "large"}, overrides[1:])
    # A bare `python` runs in the project's environment; a named interpreter is kept.
    assert build_command("python train.py", [], layout.env)[0] == layout.env.python
    assert build_command("/usr/bin/python3 train.py", [], layout.env)[0] == "/usr/bin/python3"
    assert build_command("python train.py", ["a=1"], None, multirun=True) == (
        "python",
        "train.py",
        "--multirun",
        "a=1",
    )


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("lr", "has no '='"),
        ("=3", "is not a config key"),
        ("a b=1", "is not a config key"),
        ("x;y=1", "not a"),
    ],
)
def test_bad_override_lines_are_named(line: str, problem: str) -> None:
    with pytest.raises(OverrideError, match=problem) as info:
        parse_override_lines(f"ok=1\n{line}\n")
    assert "line 2" in str(info.value)


def test_bad_entry_points() -> None:
    with pytest.raises(OverrideError, match="entry point is empty"):
        build_command("  ", [])
    with pytest.raises(OverrideError, match="No closing quotation"):
        build_command("python 'train.py", [])


def test_cluster_launch_warnings(sample_repo: SampleRepo) -> None:
    (sample_repo.work / "scratch.py").write_text("x = 1\n")
    status = g.status(sample_repo.work)
    pushed = g.newest_pushed_commit(sample_repo.work)
    warnings = launch_warnings(status, cluster=True, pushed_commit=pushed)
    assert any("uncommitted" in w for w in warnings)
    assert any(f"pushed commit {sample_repo.pushed[:8]}" in w for w in warnings)
    assert len(launch_warnings(status, cluster=False, pushed_commit=pushed)) == 1


def test_configs_folder_user_folder_and_primary_choice(tmp_path: Path) -> None:
    (tmp_path / "configs" / "db").mkdir(parents=True)
    (tmp_path / "configs" / "train.yaml").write_text("defaults:\n  - db: pg\nlr: 1\n")
    (tmp_path / "configs" / "eval.yaml").write_text("split: test\n")
    (tmp_path / "configs" / "db" / "pg.yaml").write_text("port: 5432\n")
    layout = discover(tmp_path)
    assert layout is not None and (layout.primary, layout.primaries) == ("train", ("eval", "train"))
    assert layout.default_for("db") == "pg"
    evaluation = discover(tmp_path, None, "eval")
    assert evaluation is not None and not evaluation.group("db").in_defaults
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "main.yaml").write_text("x: 1\n")
    custom = discover(tmp_path, "elsewhere")
    assert custom is not None and custom.primary == "main" and custom.groups == ()
    with pytest.raises(HydraError, match="Cannot find primary config 'nope'"):
        discover(tmp_path, None, "nope")
    # A group that is not in the defaults list is added with '+', as Hydra requires.
    assert build_overrides(evaluation, {"db": "pg"}, "") == ["+db=pg"]
    assert "port: 5432" in compose(evaluation, ["+db=pg"]).yaml


def test_launch_facts_of_local_and_slurm_jobs_have_one_shape() -> None:
    from msquant_desktop.domain.projects import job_launch_facts

    local = {"command": ["python", "train.py", "a=1"], "commit": "abc", "overrides": ["a=1"]}
    assert job_launch_facts(local) == local
    # The cluster service keeps the SlurmSubmission (as a dict) in the job's meta.
    slurm = {
        "run_id": "r1",
        "submission": {"command": ["python", "t.py"], "overrides": ["a=1"], "commit": "def", "repo_url": "u"},
    }
    facts = job_launch_facts(slurm)
    assert facts["command"] == ["python", "t.py", "a=1"] and facts["entry_point"] == "python t.py"
    assert (facts["commit"], facts["overrides"], facts["run_id"]) == ("def", ["a=1"], "r1")
    saved = {"composed_config": "a: 1\n", "commit": "def", "commit_subject": "s"}
    assert job_launch_facts(slurm, saved)["composed_config"] == "a: 1\n"


@pytest.mark.parametrize(
    "project", ["My Project", "modèle-ü", "a;b$(rm -rf ~)", "   ", "x" * 200, "mnist-demo"]
)
def test_any_project_folder_name_gives_a_job_name_the_cluster_accepts(project: str) -> None:
    from msquant_desktop.domain.projects import slurm_job_name
    from msquant_desktop.slurm.script import _NAME_OK

    name = slurm_job_name(f"{project} @ 0123abcd")
    assert _NAME_OK.match(name) and len(name) <= 64
    if project == "mnist-demo":
        assert name == "mnist-demo-0123abcd"


def _cluster_sweep_plan(**changes: object):  # type: ignore[no-untyped-def]
    from msquant_desktop.domain.jobs import JobTarget
    from msquant_desktop.domain.project_configs import SweepMember
    from msquant_desktop.domain.projects import LaunchPlan

    values: dict[str, object] = {
        "project_id": 1,
        "project_name": "demo",
        "repo": "/r",
        "entry_point": "python train.py -m",
        "overrides": ("a=1,2", "b=x"),
        "command": ("python", "train.py", "-m", "a=1,2", "b=x"),
        "commit": "a" * 40,
        "commit_subject": "s",
        "target": JobTarget.SLURM,
        "cluster": "lab",
        "repo_url": "git@host:demo.git",
        "members": (SweepMember(("a=1", "b=x"), "a: 1\n"), SweepMember(("a=2", "b=x"), "a: 2\n")),
        "sweep_mode": "members",
        "sweep_id": "s1",
        **changes,
    }
    return LaunchPlan(**values)  # type: ignore[arg-type]


def test_a_cluster_sweep_is_one_array_submission_and_an_optimizing_one_is_refused() -> None:
    from msquant_desktop.domain.projects import OverrideError, slurm_submission

    plan = _cluster_sweep_plan()
    submission = slurm_submission(plan)
    assert submission.array == "0-1" and submission.overrides == ()
    assert submission.task_overrides == (("a=1", "b=x"), ("a=2", "b=x"))
    assert submission.command == ("python", "train.py")  # each task is one run: no -m
    meta = plan.meta()
    assert meta["sweep"] == {
        "id": "s1",
        "mode": "array",
        "size": 2,
        "sweeper": None,
        "overrides": ["a=1,2", "b=x"],
    }
    assert [m["composed_config"] for m in meta["members"]] == ["a: 1\n", "a: 2\n"]
    assert meta["members"][1]["command"] == ["python", "train.py", "a=2", "b=x"]
    optimizing = _cluster_sweep_plan(sweep_mode="multirun", members=(), sweeper="x.optuna.OptunaSweeper")
    with pytest.raises(OverrideError, match=r"^OptunaSweeper picks each trial .* launch it Local"):
        slurm_submission(optimizing)
