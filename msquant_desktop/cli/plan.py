"""`msquant-desktop plan queue|size|memory|replay|place|replicas`: serving capacity from the command line,
and the replicas placed and submitted on a cluster.

Every subcommand prints one JSON object with --json (the contract in README's command table) and a few
readable lines without it.  numpy and file reading are imported only inside the handlers: building this
parser must stay cheap (tests/core/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from msquant_desktop.cli.context import CliContext, port_arg, positive_int, token_count_arg
from msquant_desktop.domain.autoscale import CONTROLLER_NAMES
from msquant_desktop.domain.json_contract import with_schema
from msquant_desktop.domain.serving_memory import (
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_MAX_NUM_SEQS,
    KV_DTYPE_BYTES,
    PLAN_SCHEMES,
)

EXIT_NO_ANSWER = 3
"""`plan size` found no number of replicas that meets the target."""

SHAPE_NAMES = ("step", "square", "sine", "diurnal")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="serving capacity: queueing figures, replica sizing, memory per replica, autoscaler replay",
        description="Plan serving for a model: M/M/c (or batching) queue figures, the fewest replicas for a "
        "target, memory per replica from the checkpoint (vLLM-style budget), and a load trace replayed "
        "through a replica controller. Rates are per second (any consistent unit for queue and size).",
    )
    sub = parser.add_subparsers(dest="plan_command", metavar="WHAT", required=True)

    queue = sub.add_parser(
        "queue", help="figures of c replicas at an arrival rate (M/M/c, G/G/c or batching)"
    )
    _rates(queue, service_required=False)
    queue.add_argument("--replicas", type=positive_int, required=True, metavar="C")
    queue.add_argument(
        "--stage-rates",
        metavar="M1,M2,...",
        help="pipeline stages in series instead of --service-rate: each stage's rate per server "
        "(C servers each); the critical stage bounds the whole",
    )
    batching = queue.add_argument_group("batching model (instead of --service-rate)")
    batching.add_argument("--itl-alpha-ms", type=float, metavar="MS", help="decode step time at batch 0")
    batching.add_argument(
        "--itl-beta-ms", type=float, default=0.0, metavar="MS", help="extra ms per sequence"
    )
    batching.add_argument("--evaluate-json", metavar="FILE", help="α, β from an `evaluate --json` result")
    batching.add_argument(
        "--output-tokens", type=float, default=256.0, metavar="N", help="mean output length"
    )
    batching.add_argument("--max-batch", type=positive_int, default=DEFAULT_MAX_NUM_SEQS, metavar="B")
    batching.add_argument(
        "--kv-max-seqs", type=positive_int, metavar="K", help="sequences the KV cache holds"
    )
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(func=handle_queue)

    size = sub.add_parser("size", help="the fewest replicas meeting a waiting or latency target")
    _rates(size, service_required=True)
    goal = size.add_mutually_exclusive_group(required=True)
    goal.add_argument("--max-p-wait", type=float, metavar="X", help="probability of waiting at most X")
    goal.add_argument("--max-mean-wait", type=float, metavar="W", help="mean wait at most W")
    goal.add_argument("--max-p95-wait", type=float, metavar="T", help="95th percentile of the wait at most T")
    goal.add_argument("--max-p99-wait", type=float, metavar="T", help="99th percentile of the wait at most T")
    goal.add_argument(
        "--max-p95-latency", type=float, metavar="T", help="p95 time in system (wait + service)"
    )
    size.add_argument("--json", action="store_true")
    size.set_defaults(func=handle_size)

    memory = sub.add_parser("memory", help="weights, KV cache and max concurrency of one replica")
    memory.add_argument("--model", required=True, metavar="DIR", help="a model folder or its config.json")
    memory.add_argument(
        "--scheme", choices=PLAN_SCHEMES, help="plan for this scheme (default: the folder's own)"
    )
    memory.add_argument("--kv-dtype", choices=sorted(KV_DTYPE_BYTES), default="bf16")
    memory.add_argument(
        "--gpu", default="h100-sxm", metavar="TYPE", help="GPU type (h100-sxm, a100-80gb, l40s, ...)"
    )
    memory.add_argument(
        "--context", type=token_count_arg, metavar="N", help="max_model_len (default: the model's)"
    )
    memory.add_argument(
        "--tp",
        type=positive_int,
        metavar="N",
        help="tensor-parallel degree (default: the smallest that fits)",
    )
    memory.add_argument(
        "--gpu-memory-utilization", type=float, default=DEFAULT_GPU_MEMORY_UTILIZATION, metavar="F"
    )
    memory.add_argument("--max-num-seqs", type=positive_int, default=DEFAULT_MAX_NUM_SEQS, metavar="N")
    memory.add_argument(
        "--max-num-batched-tokens", type=token_count_arg, default=DEFAULT_MAX_NUM_BATCHED_TOKENS, metavar="N"
    )
    memory.add_argument(
        "--overhead-gib", type=float, metavar="G", help="non-torch memory + CUDA graphs per GPU"
    )
    memory.add_argument(
        "--gpus-per-node",
        type=positive_int,
        default=8,
        metavar="N",
        help="GPUs of one node: a replica needing more is split into pipeline stages across nodes (8)",
    )
    memory.add_argument("--json", action="store_true")
    memory.set_defaults(func=handle_memory)

    replay = sub.add_parser("replay", help="a load trace through a replica controller with a cold start")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", metavar="FILE", help="CSV of time,requests_per_s")
    source.add_argument("--shape", choices=SHAPE_NAMES)
    replay.add_argument("--low", type=float, default=5.0, metavar="R", help="shape: low rate (5)")
    replay.add_argument("--high", type=float, default=50.0, metavar="R", help="shape: high rate (50)")
    replay.add_argument("--period", type=float, metavar="S", help="shape: period in seconds")
    replay.add_argument("--at", type=float, metavar="S", help="step: when it steps up")
    replay.add_argument(
        "--duration", type=float, metavar="S", help="seconds to replay (shape: 1 h, diurnal 24 h)"
    )
    replay.add_argument("--controller", choices=CONTROLLER_NAMES, required=True)
    replay.add_argument(
        "--service-rate", type=float, required=True, metavar="M", help="requests/s per replica"
    )
    replay.add_argument(
        "--slo-p95", type=float, required=True, metavar="S", help="p95 latency target, seconds"
    )
    replay.add_argument(
        "--slots-per-replica",
        type=positive_int,
        default=1,
        metavar="K",
        help="concurrent requests a replica serves",
    )
    replay.add_argument(
        "--cold-start", type=float, default=120.0, metavar="S", help="seconds until a new replica serves"
    )
    replay.add_argument("--gpus-per-replica", type=positive_int, default=1, metavar="N")
    replay.add_argument("--min-replicas", type=positive_int, default=1, metavar="N")
    replay.add_argument("--max-replicas", type=positive_int, default=100, metavar="N")
    replay.add_argument(
        "--initial-replicas",
        type=positive_int,
        metavar="N",
        help="default: the model's count for the first load",
    )
    replay.add_argument(
        "--target",
        type=float,
        metavar="X",
        help="ray: ongoing/replica; skyserve: QPS/replica; kpa: concurrency",
    )
    replay.add_argument("--cv-arrival", type=float, default=1.0, metavar="CV")
    replay.add_argument("--tick", type=float, default=1.0, metavar="S")
    replay.add_argument(
        "--series-step", type=float, default=60.0, metavar="S", help="seconds per series point (60)"
    )
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=handle_replay)

    place = sub.add_parser(
        "place",
        help="place serve replicas on a cluster's free GPUs (spread across nodes); --submit sends them",
    )
    place.add_argument("cluster", metavar="CLUSTER")
    place.add_argument("--model", required=True, metavar="PATH", help="the model's path on the cluster")
    place.add_argument("--replicas", type=positive_int, required=True, metavar="N")
    place.add_argument(
        "--tp", type=positive_int, default=1, metavar="T", help="tensor-parallel GPUs per replica"
    )
    place.add_argument("--gpu-type", metavar="TYPE", help="the cluster's GRES GPU type (default: any)")
    place.add_argument("--partition", metavar="P", help="only nodes of this partition")
    place.add_argument(
        "--template",
        metavar="CMD",
        help="the serve command; {model} {tp} {port} {replica} are filled in "
        "(default: vllm serve {model} --tensor-parallel-size {tp} --port {port})",
    )
    place.add_argument(
        "--port", type=port_arg, metavar="P", help="first port (8000); replicas on one node count up"
    )
    place.add_argument("--time", metavar="LIMIT", help="each replica's time limit (e.g. 08:00:00)")
    place.add_argument("--group", metavar="NAME", help="the replicas' group (default: serve-MODEL-STAMP)")
    place.add_argument("--submit", action="store_true", help="submit the replicas (only when all fit)")
    place.add_argument(
        "--clusters", metavar="FILE", help="use this clusters.yaml instead of the config dir's"
    )
    place.add_argument("--json", action="store_true")
    place.set_defaults(func=handle_place)

    group = sub.add_parser("replicas", help="the jobs of one group of serve replicas; --cancel ends them")
    group.add_argument("group", metavar="GROUP")
    group.add_argument("--cancel", action="store_true", help="scancel every replica still queued or running")
    group.add_argument(
        "--clusters", metavar="FILE", help="use this clusters.yaml instead of the config dir's"
    )
    group.add_argument("--json", action="store_true")
    group.set_defaults(func=handle_replicas)


def _rates(parser: argparse.ArgumentParser, service_required: bool) -> None:
    parser.add_argument("--arrival-rate", type=float, required=True, metavar="L", help="arrivals per second")
    parser.add_argument(
        "--service-rate",
        type=float,
        required=service_required,
        metavar="M",
        help="completions per second per replica",
    )
    burst = parser.add_mutually_exclusive_group()
    burst.add_argument(
        "--cv-arrival", type=float, metavar="CV", help="coefficient of variation of the gaps (1: Poisson)"
    )
    burst.add_argument(
        "--gamma-shape", type=float, metavar="K", help="gamma gaps of shape K (vLLM's burstiness): CV = 1/√K"
    )
    parser.add_argument("--cv-service", type=float, default=1.0, metavar="CV")


def _fail(command: str, message: str) -> int:
    print(f"msquant-desktop plan {command}: {message}", file=sys.stderr)
    return 2


def _print(obj: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(with_schema(obj), allow_nan=False, default=_json_default))
    else:
        print("\n".join(lines))


def _json_default(value: Any) -> Any:
    raise TypeError(f"not JSON: {value!r}")


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}{unit}"
    return f"{value}{unit}"


def _queue_lines(d: dict[str, Any]) -> list[str]:
    if not d["stable"]:
        return [d["reason"]]
    return [
        f"{d.get('model')}: utilisation {_fmt(d['utilization'])}, P(wait) {_fmt(d['p_wait'])}",
        f"wait: mean {_fmt(d['mean_wait'])}, p95 {_fmt(d['p95_wait'])}, p99 {_fmt(d['p99_wait'])}",
        f"time in system: mean {_fmt(d['mean_time_in_system'])}, p95 {_fmt(d['p95_time_in_system'])}, "
        f"p99 {_fmt(d['p99_time_in_system'])}",
    ]


def _rates_list(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--stage-rates {text!r}: give rates separated by commas, e.g. 4,3.5") from None
    if not rates or any(not math.isfinite(r) or r <= 0 for r in rates):
        raise ValueError(f"--stage-rates {text!r}: every rate must be a number > 0")
    return rates


def handle_queue(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.domain.batching import BatchingReplica
    from msquant_desktop.domain.service_rate import entered, from_evaluate_result
    from msquant_desktop.services import serving_plan

    try:
        cv = serving_plan.arrival_cv(args.cv_arrival, args.gamma_shape)
        if args.evaluate_json or args.itl_alpha_ms is not None:
            if args.evaluate_json:
                with open(args.evaluate_json, encoding="utf-8") as fh:
                    speed = from_evaluate_result(json.load(fh))
            else:
                speed = entered(args.itl_alpha_ms / 1e3, args.itl_beta_ms / 1e3)
            if cv != 1.0:
                return _fail("queue", "the batching model assumes Poisson arrivals (no --cv-arrival)")
            replica = BatchingReplica(
                speed.alpha_s, speed.beta_s, args.output_tokens, args.max_batch, args.kv_max_seqs
            )
            report = serving_plan.batching_report(args.arrival_rate, args.replicas, replica, speed.describe())
        elif args.stage_rates:
            if cv != 1.0:
                return _fail("queue", "pipeline stages are M/M/c queues in tandem (no --cv-arrival)")
            report = serving_plan.tandem_report(
                args.arrival_rate, _rates_list(args.stage_rates), args.replicas
            )
            lines = (
                [report["reason"]]
                if not report["stable"]
                else [
                    f"{len(report['stages'])} stages: critical stage {report['critical_stage']} "
                    f"(bound {_fmt(report['throughput_bound'])}/s, utilisation {_fmt(report['utilization'])}); "
                    f"time in system {_fmt(report['mean_time_in_system'])} = the sum of the stages'"
                ]
            )
            _print(report, args.json, lines)
            return 0
        elif args.service_rate is None:
            return _fail(
                "queue",
                "give --service-rate, --stage-rates, or --itl-alpha-ms / --evaluate-json for the batching model",
            )
        else:
            report = serving_plan.queue_report(
                args.arrival_rate, args.service_rate, args.replicas, cv, args.cv_service
            )
    except (OSError, ValueError) as exc:
        return _fail("queue", str(exc))
    _print(report, args.json, _queue_lines(report))
    return 0


def handle_size(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.domain.queueing import SizingTarget
    from msquant_desktop.services import serving_plan

    if args.max_p_wait is not None:
        target = SizingTarget(max_p_wait=args.max_p_wait)
    elif args.max_mean_wait is not None:
        target = SizingTarget(max_mean_wait=args.max_mean_wait)
    elif args.max_p95_wait is not None:
        target = SizingTarget(max_wait_percentile=(0.95, args.max_p95_wait))
    elif args.max_p99_wait is not None:
        target = SizingTarget(max_wait_percentile=(0.99, args.max_p99_wait))
    else:
        target = SizingTarget(max_time_in_system_percentile=(0.95, args.max_p95_latency))
    try:
        cv = serving_plan.arrival_cv(args.cv_arrival, args.gamma_shape)
        report = serving_plan.size_report(args.arrival_rate, args.service_rate, target, cv, args.cv_service)
    except ValueError as exc:
        return _fail("size", str(exc))
    if report["replicas"] is None:
        _print(report, args.json, [f"no number of replicas meets {report['target']}: {report['reason']}"])
        return EXIT_NO_ANSWER
    _print(
        report, args.json, [f"{report['replicas']} replicas meet {report['target']}", *_queue_lines(report)]
    )
    return 0


def handle_memory(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.services import serving_plan

    options = serving_plan.MemoryOptions(
        kv_dtype=args.kv_dtype,
        gpu=args.gpu,
        context_length=args.context,
        tensor_parallel=args.tp,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        overhead_bytes=None if args.overhead_gib is None else int(args.overhead_gib * 1024**3),
        gpus_per_node=args.gpus_per_node,
    )
    if args.gpus_per_node < 1:
        return _fail("memory", "--gpus-per-node must be at least 1")
    try:
        report = serving_plan.memory_report(args.model, args.scheme, options)
    except ValueError as exc:  # PlanInputError included
        return _fail("memory", str(exc))
    gib = 1024**3
    lines = [
        f"{report['scheme']} ({report['source']}{'' if report['exact'] else ', an estimate'}): weights "
        f"{report['weights_bytes'] / gib:.3f} GiB stored, {report['gpu_weights_bytes'] / gib:.3f} GiB on the GPU",
        f"KV cache: {report['kv_bytes_per_token']} bytes per token ({report['kv_dtype']})",
        f"{report['gpu_name']} × {report['tensor_parallel']}: {report['kv_blocks']} blocks of "
        f"{report['block_size']} tokens, max concurrency {report['max_concurrency']:.2f} at {report['context']} tokens",
    ]
    if report["problem"]:
        lines.append(f"does not fit: {report['problem']}")
    lines += pipeline_lines(report["pipeline"])
    _print(report, args.json, lines)
    return 0


def pipeline_lines(pipeline: dict[str, Any] | None) -> list[str]:
    """The pipeline stages of a replica that does not fit one node, in words."""
    if pipeline is None:
        return []
    if not pipeline["fits"]:
        return [f"pipeline: {pipeline['problem']}"]
    out = [
        f"pipeline: {pipeline['pipeline_parallel']} stages × TP {pipeline['tensor_parallel']} "
        f"({pipeline['gpus']} GPUs, {pipeline['gpus_per_node']} per node at most), "
        f"max {pipeline['max_sequences']} sequences; critical stage {pipeline['critical_stage']}"
    ]
    for st in pipeline["stages"]:
        out.append(
            f"  stage {st['stage']}: layers {st['first_layer']}-{st['first_layer'] + st['layers'] - 1}, "
            f"{st['weights_bytes_per_gpu'] / 1024**3:.2f} GiB weights per GPU, "
            f"{st['max_sequences']} sequences, {st['roofline_step_s'] * 1e3:.2f} ms per step (roofline)"
        )
    return out


def handle_replay(args: argparse.Namespace, ctx: CliContext) -> int:
    from msquant_desktop.plan.replay import ReplayConfig
    from msquant_desktop.plan.traces import TraceError
    from msquant_desktop.services import serving_plan

    try:
        config = ReplayConfig(
            service_rate=args.service_rate,
            slo_p95_s=args.slo_p95,
            servers_per_replica=args.slots_per_replica,
            cold_start_s=args.cold_start,
            gpus_per_replica=args.gpus_per_replica,
            tick_s=args.tick,
            cv_arrival=args.cv_arrival,
            initial_replicas=args.initial_replicas,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
        )
        shape_args = {
            "low": args.low,
            "high": args.high,
            "period": args.period,
            "at": args.at,
            "duration": args.duration,
        }
        report = serving_plan.replay_report(
            args.trace,
            args.shape,
            shape_args,
            args.controller,
            config,
            args.target,
            args.series_step,
            args.duration,
        )
    except (TraceError, ValueError) as exc:
        return _fail("replay", str(exc))
    lines = [
        f"{report['controller']} on {report['trace']} ({report['duration_s'] / 3600:.3g} h): "
        f"{_fmt(report['slo_violation_minutes'])} SLO-violation minutes, {_fmt(report['gpu_hours'])} GPU-hours, "
        f"{report['scaling_actions']} scaling actions",
        f"replicas: mean {report['mean_replicas']:.2f}, max {report['max_replicas']}; "
        f"median p95 {_fmt(report['median_p95_latency_s'], ' s')}",
    ]
    if not math.isfinite(report["gpu_hours"]):
        lines.append("(no replica was serving at some point)")
    _print(report, args.json, lines)
    return 0


EXIT_DOES_NOT_FIT = 3
"""`plan place`: not every replica fits on the free GPUs (nothing is submitted)."""


def handle_place(args: argparse.Namespace, ctx: CliContext) -> int:
    """Place the replicas on the cluster's free GPUs now; with --submit send each as a SLURM job."""
    import time

    from msquant_desktop.cli.slurm_commands import _client, _profile
    from msquant_desktop.services import serve_placement as sp
    from msquant_desktop.services.cluster_quantize import send_job
    from msquant_desktop.slurm.client import SlurmError
    from msquant_desktop.slurm.connection import SshError
    from msquant_desktop.slurm.profiles import ProfileError
    from msquant_desktop.store import JobRepository

    if args.replicas < 1 or args.tp < 1:
        return _fail("place", "--replicas and --tp must be at least 1")
    group = args.group or sp.group_name(args.model, time.strftime("%Y%m%d-%H%M%S"))
    try:
        profile = _profile(args, ctx, args.cluster)
        client = _client(profile)
    except (ProfileError, SshError, OSError) as exc:
        return _fail("place", str(exc))
    sent_jobs: list[dict[str, Any]] = []
    try:
        placed = sp.place_and_prepare(
            client.gpu_view(),
            profile,
            args.replicas,
            args.tp,
            args.gpu_type,
            args.model,
            group,
            args.template or sp.template_for(profile),
            args.port or sp.DEFAULT_BASE_PORT,
            args.partition,
            args.time,
        )
        if args.submit and placed.fits:
            repo = JobRepository(ctx.conn)
            for replica in placed.replicas:
                sent = send_job(
                    repo, ctx.paths.runs_dir, client, replica.submission, sp.SERVE_KIND, replica.meta
                )
                sent_jobs.append(
                    {
                        "replica": replica.slot.replica,
                        "job": sent.job.id,
                        "slurm_job_id": sent.job.slurm_job_id,
                        "submitted": sent.submitted,
                        "message": sent.message,
                    }
                )
    except (ValueError, SshError, SlurmError) as exc:
        return _fail("place", str(exc))
    finally:
        client.connection.close()
    out = placed.to_dict()
    if args.submit:
        out["submitted"] = sent_jobs
    lines = [placed.summary]
    if not args.submit:
        lines += [
            f"# replica {r['replica']} on {r['node']}, port {r['port']}\n{r['script']}"
            for r in out["replicas"]
        ]
    lines += [s["message"] for s in sent_jobs]
    if args.submit and not placed.fits:
        lines.append("not all replicas fit: nothing submitted")
    if sent_jobs:
        lines.append(f"group {group}: `plan replicas {group}` follows them, `--cancel` ends them")
    _print(out, args.json, lines)
    if not placed.fits:
        return EXIT_DOES_NOT_FIT
    return 0 if all(s["submitted"] for s in sent_jobs) else 1


def handle_replicas(args: argparse.Namespace, ctx: CliContext) -> int:
    """One group's replica jobs, refreshed from their clusters first (as `slurm status`); with --cancel
    scancel each unfinished one (as `slurm cancel`)."""
    from msquant_desktop.cli.slurm_commands import _refresh, cmd_cancel
    from msquant_desktop.services import serve_placement as sp
    from msquant_desktop.store import JobRepository

    repo = JobRepository(ctx.conn)
    jobs = sp.group_jobs(repo, args.group)
    if jobs:
        _refresh(args, ctx, repo)
        jobs = sp.group_jobs(repo, args.group)
    if not jobs:
        return _fail("replicas", f"no replica jobs in group {args.group!r}")
    failed = 0
    if args.cancel:
        for job in jobs:
            if not job.state.is_final:
                failed += cmd_cancel(argparse.Namespace(id=job.id, clusters=args.clusters), ctx) != 0
        jobs = sp.group_jobs(repo, args.group)
    rows = [
        {
            "job": j.id,
            "replica": j.spec.meta[sp.SERVE_META_KEY]["replica"],
            "node": j.spec.meta[sp.SERVE_META_KEY]["node"],
            "port": j.spec.meta[sp.SERVE_META_KEY]["port"],
            "cluster": j.spec.cluster,
            "slurm_job_id": j.slurm_job_id,
            "state": j.state.value,
        }
        for j in jobs
    ]
    lines = [
        f"replica {r['replica']}: job {r['job']} (SLURM {r['slurm_job_id'] or '—'}) on {r['node']}:{r['port']} "
        f"{r['state']}"
        for r in rows
    ]
    _print({"group": args.group, "jobs": rows}, args.json, lines)
    return 1 if failed else 0
