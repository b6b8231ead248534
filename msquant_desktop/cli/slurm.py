"""`msquant-desktop slurm ...`: the parser.  The commands live in `slurm_commands.py`, imported only
when a `slurm` command runs: paramiko, cryptography and jinja2 cost ~27 MB and ~0.4 s, which every
other subcommand (a quantization worker, `jobs run`) would otherwise pay for nothing."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from msquant_desktop.cli.context import (
    CliContext,
    gpu_count_arg,
    job_id_arg,
    non_negative_float,
    non_negative_int,
    positive_int,
)


def _lazy(command: str) -> Callable[[argparse.Namespace, CliContext], int]:
    def run(args: argparse.Namespace, ctx: CliContext) -> int:
        from msquant_desktop.cli import slurm_commands

        return slurm_commands.guarded(getattr(slurm_commands, command))(args, ctx)

    return run


class _AppendVerbatim(argparse.Action):
    """`append` that keeps a value of `--` as `--`.

    WORKAROUND for https://github.com/python/cpython/issues/100804 (and gh-109475): argparse of the
    Python 3.11 we ship takes the `--` of `--override=--` for its end-of-options marker and appends
    `[]`, which the script then rendered as an empty argument `''`.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        value = "--" if values == [] else values
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(value)
        setattr(namespace, self.dest, items)


def add_sbatch_options(parser: argparse.ArgumentParser) -> None:
    """--account, --qos, --constraint and --sbatch-line for any command that submits a SLURM job
    (checked by slurm/sbatch_options when the script is rendered)."""
    parser.add_argument("--account", help="charge the job to this account (else the profile's)")
    parser.add_argument("--qos", help="quality of service (else the profile's)")
    parser.add_argument("--constraint", help="node features, e.g. a100&ib (else the profile's)")
    parser.add_argument(
        "--sbatch-line",
        action=_AppendVerbatim,
        metavar="LINE",
        help="an extra '#SBATCH --opt[=value]' line, e.g. --sbatch-line=--mail-type=END (repeatable)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "slurm", help="SLURM clusters over SSH: GPUs, submit, status, logs, cancel"
    )
    sub = parser.add_subparsers(dest="slurm_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--clusters", metavar="FILE", help="use this clusters.yaml instead of the config dir's"
        )
        p.set_defaults(func=_lazy(handler))
        return p

    add("clusters", "cmd_clusters", "list the configured clusters")
    add("test", "cmd_test", "connect, report latency and SLURM version").add_argument("cluster")
    gpus = add("gpus", "cmd_gpus", "free GPUs per node, partition and type")
    gpus.add_argument("cluster")
    gpus.add_argument("--json", action="store_true")
    submit = add(
        "submit", "cmd_submit", "submit a command at a pinned commit, or a command only (no repository)"
    )
    submit.add_argument("cluster")
    submit.add_argument("--repo", help="git URL the cluster can clone (omit it for a command only)")
    submit.add_argument("--commit", help="the full commit hash to run at (with --repo)")
    submit.add_argument(
        "--no-repo",
        action="store_true",
        help="a command only: no clone, it runs in the job's folder beside the --upload files",
    )
    submit.add_argument(
        "--upload",
        action="append",
        metavar="FILE",
        help="with --no-repo: a file copied into the job's folder under its own name (repeatable)",
    )
    submit.add_argument("--name", required=True, help="job name")
    submit.add_argument(
        "--override", action=_AppendVerbatim, help="a Hydra override, passed verbatim (repeatable)"
    )
    submit.add_argument("--partition")
    submit.add_argument("--gpu-type")
    submit.add_argument("--gpus", type=gpu_count_arg, default=0)
    submit.add_argument("--cpus", type=positive_int, default=1)
    submit.add_argument("--mem")
    submit.add_argument("--time")
    submit.add_argument("--array", help="a job array's task indices, e.g. 0-9 or 0-99%%4 (one task each)")
    add_sbatch_options(submit)
    submit.add_argument("command", nargs="+", help="the command (after --)")
    status = add("status", "cmd_status", "refresh and list SLURM jobs")
    status.add_argument("--json", action="store_true")
    status.add_argument("--limit", type=positive_int, default=50)
    logs = add("logs", "cmd_logs", "print a job's remote log")
    logs.add_argument("id", type=job_id_arg)
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the job ends; exit with its status"
    )
    logs.add_argument(
        "--poll",
        type=non_negative_float,
        default=5.0,
        metavar="SECONDS",
        help="with --follow: state poll interval",
    )
    add("cancel", "cmd_cancel", "scancel a job and confirm its end (also one never sent)").add_argument(
        "id", type=job_id_arg
    )
    _register_worker_jobs(add)
    forget = add("forget", "cmd_forget", "remove a job that never reached the cluster from the local list")
    forget.add_argument("id", type=job_id_arg)
    forget.add_argument("--force", action="store_true", help="also a job that may exist on the cluster")


def _lazy_worker_job(command: str) -> Callable[[argparse.Namespace, CliContext], int]:
    def run(args: argparse.Namespace, ctx: CliContext) -> int:
        from msquant_desktop.cli import slurm_commands, slurm_quantize

        return slurm_commands.guarded(getattr(slurm_quantize, command))(args, ctx)

    return run


def _register_worker_jobs(add: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """`slurm quantize|evaluate`: the workers as SLURM jobs (cli/slurm_quantize.py).  Paths are the
    cluster's; the worker's own arguments come first, then what the job asks of SLURM."""
    from msquant_desktop.quantize.args import add_evaluate_arguments, add_quantize_arguments

    for name, help_text, add_worker in (
        (
            "quantize",
            "quantize a model folder on the cluster (its Python needs llmcompressor)",
            add_quantize_arguments,
        ),
        (
            "evaluate",
            "evaluate a model folder on the cluster (perplexity, agreement, speed)",
            add_evaluate_arguments,
        ),
    ):
        parser = add(name, f"cmd_{name}", help_text)
        parser.set_defaults(func=_lazy_worker_job(f"cmd_{name}"))
        add_worker(parser)
        for action in parser._actions:  # the paths are the cluster's; a model may be a cached repo id
            if action.dest in ("model", "original"):
                action.metavar = "DIR|ORG/NAME[@REV]"
                action.help = (
                    f"{action.help} — a folder on the cluster, or a Hugging Face repo id found in the "
                    "cluster's HF cache"
                )
        parser.add_argument("cluster")
        parser.add_argument(
            "--python", metavar="REMOTE_PY", help="a Python on the cluster with llmcompressor"
        )
        parser.add_argument("--partition")
        parser.add_argument("--gpu-type")
        parser.add_argument("--gpus", type=gpu_count_arg, default=0)
        parser.add_argument("--cpus", type=positive_int, default=1)
        parser.add_argument("--mem")
        parser.add_argument("--time")
        parser.add_argument("--wait", action="store_true", help="print progress until the job ends")
    download = add("download", "cmd_download", "copy a cluster quantization's output here (resumable)")
    download.set_defaults(func=_lazy_worker_job("cmd_download"))
    download.add_argument("id", type=job_id_arg)
    download.add_argument("--to", required=True, metavar="DIR", help="local folder to copy into")
    download.add_argument("--retries", type=non_negative_int, default=10, help="reconnects after a cut (10)")
