"""Small Hydra projects with the shapes of real public ones, and real virtualenvs for them.

Each layout is a recorded miniature of a real project's config tree (its source named below): the
same defaults lists, packages, nested groups and overrides, with the values cut down.  The venvs are
real (`python -m venv` + pip from PyPI), made once per test session under pytest's temp folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

# lightning-hydra-template (github.com/ashleve/lightning-hydra-template): configs/train.yaml,
# experiment/example.yaml (`# @package _global_`, `override /...`), logger: null, debug: null with
# debug/fdr inheriting debug/default, `optional local`, hydra/default.yaml overriding job_logging and
# hydra_logging with hydra-colorlog's `colorlog`, and src/train.py's @hydra.main.  Its hparams_search
# uses the optuna sweeper; here a search of the same shape uses Hydra's basic sweeper params.
LIGHTNING = {
    "src/train.py": """\
import json
import sys
import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
def main(cfg: DictConfig) -> None:
    print("PYTHON " + sys.executable)
    print("CFG " + json.dumps(OmegaConf.to_container(cfg, resolve=False), sort_keys=True))


if __name__ == "__main__":
    main()
""",
    "src/eval.py": """\
import hydra


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval.yaml")
def main(cfg) -> None:
    print("EVAL", cfg.task_name)


if __name__ == "__main__":
    main()
""",
    "configs/train.yaml": """\
# @package _global_
defaults:
  - _self_
  - data: mnist.yaml
  - model: mnist.yaml
  - callbacks: default.yaml
  - logger: null # set logger here or use command line (e.g. `python train.py logger=tensorboard`)
  - trainer: default.yaml
  - paths: default.yaml
  - hydra: default.yaml
  - experiment: null
  - hparams_search: null
  - optional local: default.yaml
  - debug: null
task_name: "train"
tags: ["dev"]
seed: null
""",
    "configs/eval.yaml": """\
# @package _global_
defaults:
  - _self_
  - data: mnist
  - model: mnist
  - paths: default
  - hydra: default
task_name: "eval"
ckpt_path: ???
""",
    "configs/data/mnist.yaml": "_target_: src.data.MNISTDataModule\nbatch_size: 128\nnum_workers: 0\n",
    "configs/model/mnist.yaml": "_target_: src.models.MNISTLitModule\nlr: 0.001\nnet:\n  lin1_size: 64\n",
    "configs/callbacks/default.yaml": "model_checkpoint:\n  monitor: val/acc\n",
    "configs/callbacks/none.yaml": "{}\n",
    "configs/logger/csv.yaml": "csv:\n  save_dir: ${paths.output_dir}\n",
    "configs/logger/tensorboard.yaml": "tensorboard:\n  save_dir: ${paths.output_dir}/tensorboard/\n",
    "configs/trainer/default.yaml": "max_epochs: 10\naccelerator: cpu\n",
    "configs/trainer/gpu.yaml": "defaults:\n  - default\naccelerator: gpu\n",
    "configs/paths/default.yaml": "root_dir: .\nlog_dir: ${paths.root_dir}/logs/\noutput_dir: ${hydra:runtime.output_dir}\n",
    "configs/hydra/default.yaml": """\
# enable color logging
defaults:
  - override hydra_logging: colorlog
  - override job_logging: colorlog
run:
  dir: ${paths.log_dir}/${task_name}/runs/run
sweep:
  dir: ${paths.log_dir}/${task_name}/multiruns/sweep
  subdir: ${hydra.job.num}
""",
    "configs/experiment/example.yaml": """\
# @package _global_
# to execute this experiment run:
# python train.py experiment=example
defaults:
  - override /data: mnist
  - override /model: mnist
  - override /callbacks: default
  - override /trainer: default
tags: ["mnist", "simple_dense_net"]
seed: 12345
trainer:
  max_epochs: 10
model:
  lr: 0.002
""",
    "configs/hparams_search/mnist_grid.yaml": """\
# @package _global_
# python train.py -m hparams_search=mnist_grid
hydra:
  sweeper:
    params:
      model.lr: 0.001,0.01
      data.batch_size: 32,64
""",
    # The shape of its hparams_search/mnist_optuna.yaml, with the optuna plugin's own settings left out
    # (they need hydra-optuna-sweeper and optuna): a sweeper that picks its trials itself.
    "configs/hparams_search/mnist_optuna.yaml": """\
# @package _global_
# python train.py -m hparams_search=mnist_optuna experiment=example
optimized_metric: "val/acc_best"
hydra:
  sweeper:
    _target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper
""",
    "configs/debug/default.yaml": "# @package _global_\ntask_name: debug\ntrainer:\n  max_epochs: 1\n",
    "configs/debug/fdr.yaml": "# @package _global_\ndefaults:\n  - default\ntrainer:\n  fast_dev_run: true\n",
    "configs/local/.gitkeep": "",
}

# audiocraft (github.com/facebookresearch/audiocraft): config/config.yaml (`_self_`, dset: default,
# solver: default), solver/*.yaml and solver/<family>/*.yaml with `# @package __global__`, defaults
# such as `musicgen/default`, `/model: lm/musicgen_lm`, `override /dset: audio/default`, the nested
# groups solver/musicgen/evaluation and model/lm/model_scale that other configs select from, and
# audiocraft/train.py's @hydra.main(config_path='../config', config_name='config').  audiocraft passes
# version_base='1.1', which needs Hydra 1.2; this miniature pins Hydra 1.1, so it passes none.
AUDIOCRAFT = {
    "audiocraft/__init__.py": "",
    "audiocraft/train.py": """\
import json
import sys
import hydra
from omegaconf import OmegaConf


@hydra.main(config_path="../config", config_name="config")
def main(cfg):
    print("PYTHON " + sys.executable + " HYDRA " + hydra.__version__)
    print("CFG " + json.dumps(OmegaConf.to_container(cfg, resolve=False), sort_keys=True))


if __name__ == "__main__":
    main()
""",
    "config/config.yaml": """\
defaults:
  - _self_
  - dset: default
  - solver: default
device: cuda
seed: 2036
label:
dora:
  dir: ./outputs
""",
    "config/dset/default.yaml": "# @package __global__\ndatasource:\n  train: null\n",
    "config/dset/audio/default.yaml": "# @package __global__\ndatasource:\n  train: egs/train\n",
    "config/dset/audio/example.yaml": "# @package __global__\ndatasource:\n  train: egs/example\n",
    "config/solver/default.yaml": "# @package __global__\nsolver: ???\noptim:\n  epochs: ???\n  lr: ???\n",
    "config/solver/compression/default.yaml": """\
# @package __global__
defaults:
  - /solver/default
  - override /dset: audio/default
  - _self_
solver: compression
optim:
  epochs: 200
  lr: 3e-4
""",
    "config/solver/compression/encodec_base_24khz.yaml": """\
# @package __global__
defaults:
  - compression/default
  - /model: encodec/encodec_base_causal
  - override /dset: audio/default
  - _self_
sample_rate: 24000
""",
    "config/solver/musicgen/default.yaml": """\
# @package __global__
defaults:
  - /solver/default
  - /conditioner: none
  - _self_
  - /solver/musicgen/evaluation: none
  - override /dset: audio/default
solver: musicgen
sample_rate: ???
optim:
  epochs: 200
  lr: 1e-4
""",
    "config/solver/musicgen/musicgen_base_32khz.yaml": """\
# @package __global__
defaults:
  - musicgen/default
  - /model: lm/musicgen_lm
  - override /dset: audio/default
  - _self_
autocast: true
sample_rate: 32000
""",
    "config/solver/musicgen/evaluation/none.yaml": "# @package __global__\ndataset:\n  evaluate:\n    num_samples: 10000\n",
    "config/solver/musicgen/evaluation/objective_eval.yaml": "# @package __global__\nevaluate:\n  metrics:\n    fad: true\n",
    "config/conditioner/none.yaml": "# @package __global__\nconditioners: {}\n",
    "config/conditioner/text2music.yaml": "# @package __global__\nconditioners:\n  description:\n    model: t5\n",
    "config/model/encodec/encodec_base_causal.yaml": "# @package __global__\nencodec:\n  causal: true\n",
    "config/model/lm/default.yaml": """\
# @package __global__
defaults:
  - _self_
  - /model/lm/model_scale: base
lm_model: transformer_lm
""",
    "config/model/lm/musicgen_lm.yaml": """\
# @package __global__
defaults:
  - lm/default
  - override /conditioner: text2music
  - override /model/lm/model_scale: small
codebooks_pattern:
  modeling: delay
""",
    "config/model/lm/model_scale/base.yaml": "# @package _global_\ntransformer_lm:\n  dim: 1024\n",
    "config/model/lm/model_scale/small.yaml": "# @package _global_\ntransformer_lm:\n  dim: 512\n",
}

# A project of the shapes the other two lack: a `cfgs/` folder found only from the entry point,
# `db@backup` (a package on the defaults entry), `experiment@_global_: null`, an `optional` default, a
# group outside the defaults list (`+tool=...`), and an option that only the primary's
# hydra.searchpath provides (as lightning-hydra-template's docs and Hydra's searchpath example do).
SEARCHPATH = {
    "app/main.py": """\
import hydra


@hydra.main(config_path="../cfgs", config_name="main", version_base=None)
def run(cfg):
    print(cfg)


if __name__ == "__main__":
    run()
""",
    "cfgs/main.yaml": """\
defaults:
  - db: mysql
  - db@backup: sqlite
  - experiment@_global_: null
  - optional site: default
  - _self_
hydra:
  searchpath:
    - file://extra_configs
name: app
""",
    "cfgs/db/mysql.yaml": "driver: mysql\nport: 3306\n",
    "cfgs/db/sqlite.yaml": "driver: sqlite\n",
    "cfgs/experiment/fast.yaml": "# @package _global_\nname: fast\nepochs: 1\n",
    "cfgs/experiment/slow.yaml": "# @package _global_\nname: slow\nepochs: 100\n",
    "cfgs/site/default.yaml": "cache: /tmp/cache\n",
    "cfgs/site/cluster.yaml": "cache: /scratch/cache\n",
    "cfgs/tool/profiler.yaml": "enabled: true\n",
    "extra_configs/db/postgres.yaml": "driver: postgres\nport: 5432\n",
}

GITIGNORE = ".venv/\nvenv/\nlogs/\noutputs/\n__pycache__/\n"


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".gitignore").write_text(GITIGNORE)
    return root


def find_old_python() -> str | None:
    """A Python that hydra-core 1.1 runs on (it fails on 3.11: mutable dataclass defaults)."""
    candidates = [
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")), reverse=True),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")), reverse=True),
        *filter(None, (shutil.which(n) for n in ("python3.10", "python3.9", "python3.8"))),
    ]
    for candidate in candidates:
        ok = subprocess.run([candidate, "-c", "import venv"], capture_output=True, timeout=60)
        if ok.returncode == 0:  # (a pyenv shim of a version that is not active exits 127)
            return candidate
    return None


def make_venv(dest: Path, base_python: str, requirements: list[str]) -> Path:
    """A real virtualenv at `dest` with `requirements` from PyPI; returns its python."""
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(dest)], check=True, timeout=300)
    python = dest / "bin" / "python"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--disable-pip-version-check",
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {requirements} into {dest} failed:\n{proc.stderr[-3000:]}")
    return python


def link_venv(project: Path, venv: Path, name: str = ".venv") -> None:
    """The session's venv as the project's own `.venv` (a symlink: the venv is made once)."""
    (project / name).symlink_to(venv, target_is_directory=True)
