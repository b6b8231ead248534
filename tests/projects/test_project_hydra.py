"""A project's own Python and Hydra: environments, entry points read by ast, pickers from Hydra's
defaults tree, and every picker choice composing in real virtualenvs (Hydra 1.3 with a plugin, 1.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from msquant_desktop.domain.project_configs import HydraLayout, split_prefill
from msquant_desktop.domain.projects import build_overrides
from msquant_desktop.projects.entry_points import scan_project
from msquant_desktop.projects.environment import find_environment
from msquant_desktop.projects.hydra_config import HydraError, compose, compose_each, discover
from tests.conftest import run_cli_argv
from tests.projects.conftest import HydraVenvs


def every_choice(layout: HydraLayout) -> list[list[str]]:
    """No override, then each picker choice on its own (the default adds nothing)."""
    sets: list[list[str]] = [[]]
    for group in layout.groups:
        sets += [[c.override] for c in group.choices if c.option != group.default]
    return sets


def assert_every_choice_composes(layout: HydraLayout) -> None:
    sets = every_choice(layout)
    errors = compose_each(layout, sets)
    failed = [(s, e) for s, e in zip(sets, errors, strict=True) if e is not None]
    assert not failed, failed
    assert len(errors) == len(sets)


def overrides_of(layout: HydraLayout, key: str) -> list[str]:
    group = layout.group(key)
    assert group is not None, [g.key for g in layout.groups]
    return [c.override for c in group.choices]


def test_lightning_template_shapes_in_its_venv_with_a_plugin(lightning_project: Path) -> None:
    found = discover(lightning_project)
    layout = found.layout
    assert found.problem is None and layout is not None
    assert found.env.source == ".venv" and found.env.python == str(lightning_project / ".venv/bin/python")
    assert layout.hydra_version == "1.3.2"
    assert [e.script for e in found.scan.entry_points] == ["src/eval.py", "src/train.py"]
    assert layout.entry is not None and layout.entry.script == "src/train.py"  # train scripts first
    assert (layout.config_dir, layout.primary) == (str(lightning_project / "configs"), "train")
    assert layout.version_base == "1.3" and layout.has_version_base
    # Null defaults are in the defaults list: `experiment=example`, never `+experiment=example`.
    assert overrides_of(layout, "experiment") == ["experiment=example"]
    assert overrides_of(layout, "logger") == ["logger=csv", "logger=tensorboard"]
    assert overrides_of(layout, "debug") == ["debug=default", "debug=fdr"]
    assert layout.group("experiment").default is None  # type: ignore[union-attr]
    assert layout.group("trainer").default == "default"  # type: ignore[union-attr]
    assert layout.group("hydra") is None and layout.group("local") is None  # Hydra's own; no options
    assert all(not g.refused for g in layout.groups)
    assert_every_choice_composes(layout)

    # The colorlog plugin lives only in the project's .venv: the app's own Python cannot compose it.
    found_here = discover(lightning_project, python=sys.executable)
    assert found_here.env.source == "settings"
    assert found_here.problem is not None and "colorlog" in found_here.problem


def test_audiocraft_shapes_on_hydra_1_1(audiocraft_project: Path, hydra_venvs: HydraVenvs) -> None:
    found = discover(audiocraft_project)
    layout = found.layout
    assert found.problem is None and layout is not None
    assert layout.hydra_version == "1.1.2" and not layout.has_version_base
    # Nested folders are options of their group, not pickers of their own...
    assert overrides_of(layout, "solver") == [
        "solver=compression/default",
        "solver=compression/encodec_base_24khz",
        "solver=default",
        "solver=musicgen/default",
        "solver=musicgen/musicgen_base_32khz",
    ]
    assert overrides_of(layout, "dset") == ["dset=audio/default", "dset=audio/example", "dset=default"]
    # ...except folders other configs select from (solver/musicgen/evaluation, model/lm/model_scale).
    assert not any("evaluation" in o for o in layout.group("solver").options)  # type: ignore[union-attr]
    model = layout.group("model")
    assert model is not None and not model.in_defaults
    assert not any("model_scale" in o for o in model.options)
    # model/lm/musicgen_lm overrides /conditioner, which only a solver brings: Hydra refuses it alone.
    assert [r[0] for r in model.refused] == ["lm/musicgen_lm"]
    assert "Could not override 'conditioner'" in model.refused[0][2]
    assert_every_choice_composes(layout)
    composed = compose(layout, ["solver=musicgen/musicgen_base_32khz"])
    assert "sample_rate: 32000" in composed.yaml and "train: egs/train" in composed.yaml


def test_cfgs_folder_packages_searchpath_and_plus_groups(searchpath_project: Path) -> None:
    found = discover(searchpath_project)
    layout = found.layout
    assert found.env.is_fallback and "no .venv" in found.env.describe()
    assert layout is not None and layout.config_dir == str(searchpath_project / "cfgs")
    assert layout.source == "entry point"
    # An option only the primary's hydra.searchpath provides appears.
    assert overrides_of(layout, "db") == ["db=mysql", "db=postgres", "db=sqlite"]
    # The package of a defaults entry is part of Hydra's override key.
    assert overrides_of(layout, "db@backup") == ["db@backup=mysql", "db@backup=postgres", "db@backup=sqlite"]
    assert overrides_of(layout, "experiment@_global_") == [
        "experiment@_global_=fast",
        "experiment@_global_=slow",
    ]
    assert layout.group("site").optional  # type: ignore[union-attr]
    assert overrides_of(layout, "tool") == ["+tool=profiler"]  # not in the defaults list: `+`
    assert_every_choice_composes(layout)
    text = compose(layout, ["db=postgres", "experiment@_global_=fast", "+tool=profiler"]).yaml
    assert "port: 5432" in text and "epochs: 1" in text and "enabled: true" in text


def test_prefill_never_rewrites_overrides(searchpath_project: Path) -> None:
    layout = discover(searchpath_project).layout
    ran = ["experiment@_global_=fast", "db=postgres", "+tool=profiler", "name='a b'", "+db=sqlite"]
    choices, free = split_prefill(layout, ran)
    assert choices == {"experiment@_global_": "fast", "db": "postgres", "tool": "profiler"}
    assert free == ["name='a b'", "+db=sqlite"]  # not a picker's string: kept verbatim as a line
    rebuilt = build_overrides(layout, choices, "\n".join(free))
    assert sorted(rebuilt) == sorted(ran)


def test_hydra_refusals_are_hydras_own_words(lightning_project: Path) -> None:
    layout = discover(lightning_project).layout
    assert layout is not None
    with pytest.raises(HydraError, match="Multiple values for experiment"):
        compose(layout, ["+experiment=example"])
    with pytest.raises(HydraError, match="Could not find 'model/huge'"):
        compose(layout, ["model=huge"])
    full = compose(layout, ["hydra.run.dir=elsewhere"], hydra=True, resolve=True)
    assert "\nhydra:" not in "\n" + full.yaml and full.hydra_yaml and "dir: elsewhere" in full.hydra_yaml
    assert full.hydra_yaml is not None and "colorlog" in full.hydra_yaml
    assert full.resolved_yaml is not None and "log_dir: ./logs/" in full.resolved_yaml


def test_cli_show_and_compose_json(lightning_project: Path) -> None:
    def cli(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        proc = subprocess.run(run_cli_argv(*args), capture_output=True, text=True, timeout=300)
        return proc.returncode, json.loads(proc.stdout)

    rc, shown = cli("projects", "show", str(lightning_project), "--json")
    assert rc == 0, shown
    assert {"entry_points", "config_dir", "config_name", "python", "groups"} <= set(shown)
    assert shown["python"] == str(lightning_project / ".venv/bin/python")
    assert (shown["config_dir"], shown["config_name"]) == (str(lightning_project / "configs"), "train")
    experiment = next(g for g in shown["groups"] if g["name"] == "experiment")
    assert {"name", "package", "default", "options", "choices"} <= set(experiment)
    assert experiment["choices"] == [{"option": "example", "override": "experiment=example"}]
    assert experiment["default"] is None

    rc, composed = cli("projects", "compose", str(lightning_project), "--json", "--", "experiment=example")
    assert rc == 0 and composed["ok"] and "seed: 12345" in composed["yaml"]
    rc, refused = cli("projects", "compose", str(lightning_project), "--json", "--", "+experiment=example")
    assert rc == 1 and refused == {
        "schema": 1,
        "ok": False,
        "error": refused["error"],
        "python": shown["python"],
    }
    assert "Multiple values for experiment" in refused["error"]
    rc, evaluated = cli("projects", "compose", str(lightning_project), "--config-name", "eval", "--json")
    assert rc == 0 and "task_name: eval" in evaluated["yaml"]


def test_environment_detection(
    tmp_path: Path, hydra_venvs: HydraVenvs, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.projects.hydra_fixtures import link_venv

    project = tmp_path / "p"
    project.mkdir()
    fallback = find_environment(project)
    assert fallback.is_fallback and fallback.python == sys.executable
    # A conda env named in environment.yml, where conda keeps its envs (a real env made by venv).
    (project / "environment.yml").write_text("name: trainenv\nchannels: [conda-forge]\n")
    assert "not on this machine" in find_environment(project).note
    envs = tmp_path / "conda" / "envs"
    envs.mkdir(parents=True)
    link_venv(envs, hydra_venvs.modern, "trainenv")
    monkeypatch.setenv("CONDA_ENVS_PATH", str(envs))
    conda = find_environment(project)
    assert conda.source == "conda:trainenv" and conda.python == str(envs / "trainenv/bin/python")
    assert dict(conda.job_env("/usr/bin"))["PATH"] == f"{envs / 'trainenv/bin'}:/usr/bin"
    # venv/ wins over the conda env; the user's choice wins over both.
    link_venv(project, hydra_venvs.modern, "venv")
    assert find_environment(project).source == "venv"
    chosen = find_environment(project, str(hydra_venvs.modern / "bin" / "python"))
    assert chosen.source == "settings" and chosen.prefix == str(hydra_venvs.modern)
    missing = find_environment(project, "/nowhere/python")
    assert missing.source == "venv" and "not an executable Python" in missing.note


def test_entry_points_are_read_not_imported(tmp_path: Path) -> None:
    files = {
        # Imported, this would fail: only the files are read.
        "train.py": "import no_such_module\nimport hydra\n\n"
        "@hydra.main(config_path='cfgs', config_name='train.yaml', version_base='1.3')\n"
        "def main(cfg): ...\n",
        "tools/old.py": "from hydra import main as hydra_main\n\n"
        "@hydra_main('../conf', 'legacy')\ndef run(cfg): ...\n",
        "pkg/entry.py": "import hydra\n\n@hydra.main(config_path='pkg://pkg.conf', config_name='c', "
        "version_base=None)\ndef f(cfg): ...\n",
        "notebooks/explore.py": "from hydra import initialize, compose\n"
        "with initialize(config_path='../cfgs', version_base=None):\n"
        "    cfg = compose(config_name='train', overrides=['a=1'])\n",
        "store.py": "from hydra.core.config_store import ConfigStore\ncs = ConfigStore.instance()\n"
        "cs.store(name='base', node={'a': 1})\n",
        # Dora's wrapper of hydra.main, as facebookresearch/audiocraft's audiocraft/train.py uses it
        # (commit 896ec7c, line 130), and through the module.
        "audiocraft/train.py": "from dora import git_save, hydra_main, XP\n\n"
        "@hydra_main(config_path='../config', config_name='config', version_base='1.1')\n"
        "def main(cfg): ...\n",
        "tools/dora_entry.py": "import dora\n\n@dora.hydra_main(config_path='../conf', config_name='d')\n"
        "def main(cfg): ...\n",
        ".venv/lib/site.py": "import hydra\n@hydra.main(config_path='x')\ndef g(c): ...\n",
        "broken.py": "def (:\n hydra\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    scan = scan_project(tmp_path)
    got = {
        (e.script, e.kind, e.config_dir, e.config_module, e.config_name, e.version_base, e.has_version_base)
        for e in scan.entry_points
    }
    assert got == {
        ("train.py", "main", "cfgs", None, "train", "1.3", True),
        ("tools/old.py", "main", "conf", None, "legacy", None, False),
        ("pkg/entry.py", "main", None, "pkg.conf", "c", None, True),
        ("notebooks/explore.py", "compose", "cfgs", None, "train", None, True),
        ("audiocraft/train.py", "main", "config", None, "config", "1.1", True),
        ("tools/dora_entry.py", "main", "conf", None, "d", None, False),
    }
    assert scan.structured_modules == (str(tmp_path / "store.py"),)


def test_the_bundle_fallback_runs_the_same_probe(searchpath_project: Path) -> None:
    """`project-probe` (a bundle without a Python of its own) answers exactly as the script does."""
    request = {
        "op": "compose",
        "root": str(searchpath_project),
        "config_dir": str(searchpath_project / "cfgs"),
        "config_name": "main",
        "overrides": ["db=postgres"],
    }
    proc = subprocess.run(
        run_cli_argv("project-probe"), input=json.dumps(request), capture_output=True, text=True, timeout=120
    )
    answer = json.loads(proc.stdout)
    assert proc.returncode == 0 and answer["ok"] and "port: 5432" in answer["yaml"]
    assert proc.stdout.count("\n") == 1  # one answer line; Hydra's warnings went to stderr


GRID_IN_CONFIG = {
    "train.py": (
        "import hydra\n\n\n"
        "@hydra.main(version_base='1.3', config_path='conf', config_name='config')\n"
        "def main(cfg):\n    print(cfg)\n\n\nif __name__ == '__main__':\n    main()\n"
    ),
    # The shape of a primary config carrying its own grid, as lightning-hydra-template's
    # hparams_search does (github.com/ashleve/lightning-hydra-template), for Hydra's basic sweeper.
    "conf/config.yaml": "defaults:\n  - _self_\nlr: 0.1\nb: x\nhydra:\n  sweeper:\n    params:\n      lr: 0.1,0.2\n",
}


def test_a_grid_in_the_primary_config_expands_as_the_basic_sweeper_does(
    tmp_path: Path, hydra_venvs: HydraVenvs
) -> None:
    from msquant_desktop.projects.hydra_config import plan
    from tests.projects.conftest import hydra_project

    layout = discover(hydra_project(tmp_path / "grid", GRID_IN_CONFIG, hydra_venvs.modern)).layout
    assert layout is not None
    both = plan(layout, ["b=x,y"], multirun=True)
    assert both.mode == "members" and [m.overrides for m in both.members] == [
        ("lr=0.1", "b=x"),
        ("lr=0.1", "b=y"),
        ("lr=0.2", "b=x"),
        ("lr=0.2", "b=y"),
    ]
    assert both.members[3].composed_config == "lr: 0.2\nb: 'y'\n"  # the hydra: section is no part of it
    # A value on the command line replaces the config's sweep of that key; without --multirun the
    # config's grid does nothing (as in Hydra).
    assert [m.overrides for m in plan(layout, ["lr=0.5"], multirun=True).members] == [("lr=0.5",)]
    single = plan(layout, ["b=y"])
    assert single.mode is None and [m.overrides for m in single.members] == [("b=y",)]
    with pytest.raises(HydraError, match="only an optimizing sweeper can run it"):
        plan(layout, ["lr=interval(0,1)"], multirun=True)
