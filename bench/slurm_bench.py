"""SLURM over SSH on the loopback testbed: status poll, submit, free-GPU view (medians).

    sudo PYTHONPATH=. python bench/slurm_bench.py [--runs N] [--keep]

Brings the testbed up (tests/testbed/slurm_testbed.sh), measures on one persistent connection, and
prints the figures that BENCHMARKS.md quotes.  Needs root, like the testbed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobState, JobTarget
from msquant_desktop.domain.slurm import SlurmSubmission
from msquant_desktop.services.cluster_jobs import _submission_dict, render_for
from msquant_desktop.slurm.client import SlurmClient, TrackedJob
from msquant_desktop.slurm.connection import SshConnection, target_for_profile
from msquant_desktop.slurm.script import remote_paths
from tests.slurm.conftest import bring_up, tear_down, testbed_dir


def median_ms(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="leave the testbed running")
    args = parser.parse_args()
    directory = testbed_dir()
    bed = bring_up(directory)
    tmp = Path(tempfile.mkdtemp(prefix="slurm-bench-"))
    profile = bed.profile(bed.known_hosts(tmp / "known_hosts"))
    target = target_for_profile(profile, ssh_config=Path("/nonexistent"))
    connection = SshConnection(target)
    connect_s = connection.connect()
    client = SlurmClient(profile, connection)
    workspace = client.workspace()

    # A few running jobs to track (each holds one CPU, writes a line per second to its log).
    tracked = []
    for i in range(3):
        remote = remote_paths(workspace, f"bench-track-{time.time_ns()}-{i}")
        connection.mkdir_private(remote.run_dir)
        out = connection.run(
            [
                "sbatch",
                "--parsable",
                "-o",
                remote.log,
                "--wrap",
                "for i in $(seq 60); do echo tick $i; sleep 1; done",
            ]
        ).out.strip()
        tracked.append(TrackedJob(i, out, remote))
    time.sleep(1.5)

    print(f"testbed: 2 nodes, sshd on loopback; connect + host-key check + auth: {connect_s * 1000:.0f} ms")
    med, worst = median_ms(client.queue, args.runs)
    print(
        f"status poll (one squeue for all our jobs, persistent connection): median {med:.1f} ms, max {worst:.1f} ms"
    )
    med, worst = median_ms(lambda: client.poll(tracked), args.runs)
    print(f"full poll of 3 running jobs (squeue + 3 SFTP log tails): median {med:.1f} ms, max {worst:.1f} ms")

    def fresh_connection_squeue() -> None:
        c = SshConnection(target)
        c.connect()
        c.run(["squeue", "--me", "-h"])
        c.close()

    med, worst = median_ms(fresh_connection_squeue, max(5, args.runs // 3))
    print(f"  for comparison, a new SSH connection per squeue: median {med:.1f} ms")

    med, worst = median_ms(client.gpu_view, args.runs)
    print(
        f"free-GPU view for 2 nodes (scontrol -d show node + pending squeue + rollup): median {med:.1f} ms, max {worst:.1f} ms"
    )

    submission = SlurmSubmission(
        cluster="testbed",
        job_name="bench",
        repo_url="/nonexistent.git",
        commit="a" * 40,
        command=("true",),
        overrides=("x=1",),
        partition="debug",
    )
    submitted: list[str] = []

    def submit_one() -> None:
        run_id = f"bench-{time.time_ns()}"
        spec = JobSpec(
            name="bench",
            argv=("true",),
            kind=JobKind.COMMAND,
            target=JobTarget.SLURM,
            cluster="testbed",
            meta={
                "run_id": run_id,
                "slurm_name": f"bench-{run_id}",
                "submission": _submission_dict(submission),
            },
        )
        job = JobRecord(id=0, spec=spec, state=JobState.STARTING, created_at=None)  # type: ignore[arg-type]
        script, remote = render_for(job, profile, workspace)
        submitted.append(client.submit(remote, script, spec.meta["slurm_name"]))

    med, worst = median_ms(submit_one, max(10, args.runs // 2))
    print(f"submit (render + SFTP upload + sbatch --parsable): median {med:.1f} ms, max {worst:.1f} ms")

    connection.run(["scancel", *submitted, *(t.slurm_job_id for t in tracked)])
    connection.close()
    if not args.keep:
        tear_down(directory)
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
