"""`jobs` CLI against the same store as a running app engine: the limit holds across both."""

from __future__ import annotations

import json
import subprocess
import sys

from msquant_desktop.domain.jobs import JobSpec, JobState
from tests.jobs.conftest import wait_final
from tests.jobs.helpers import child_env


def _cli(data_dir, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_jobs_share_the_queue_with_the_open_app(make_engine, data_dir, qtbot) -> None:  # type: ignore[no-untyped-def]
    service = make_engine(max_jobs=1, grace=0.5)
    added: list[int] = []
    service.sig_job_added.connect(added.append)
    app_job = service.submit(JobSpec(name="app job", argv=("sleep", "60")))
    qtbot.waitUntil(lambda: service.get(app_job.id).state is JobState.RUNNING, timeout=10000)

    run = _cli(
        data_dir,
        "run",
        "--no-wait",
        "--name",
        "cli job",
        "--",
        "sh",
        "-c",
        "echo from-cli; echo to-stderr >&2",
    )
    assert run.returncode == 0, run.stderr
    assert "waits in the queue" in run.stdout  # the app's job holds the only slot
    cli_id = int(run.stdout.split()[1])
    qtbot.waitUntil(lambda: cli_id in added, timeout=5000)  # the open app shows it live
    assert service.get(cli_id).state is JobState.QUEUED

    cancel = _cli(data_dir, "cancel", str(app_job.id))
    assert cancel.returncode == 0 and "cancelling" in cancel.stdout
    assert wait_final(qtbot, service, app_job.id).state is JobState.CANCELLED
    assert wait_final(qtbot, service, cli_id).state is JobState.COMPLETED  # the freed slot went to it

    logs = _cli(data_dir, "logs", str(cli_id))
    assert logs.stdout == "from-cli\n" and logs.stderr == "to-stderr\n"
    listing = json.loads(_cli(data_dir, "list", "--json").stdout)["jobs"]
    assert [(j["id"], j["state"]) for j in listing] == [(cli_id, "COMPLETED"), (app_job.id, "CANCELLED")]
    show = _cli(data_dir, "show", str(cli_id), "--json")
    assert [t["to"] for t in json.loads(show.stdout)["transitions"]][-1] == "COMPLETED"
    bad = _cli(data_dir, "run", "--cwd", str(data_dir / "missing"), "--", "true")
    assert bad.returncode == 2 and "no such directory" in bad.stderr


def test_cli_run_starts_at_once_when_a_slot_is_free_and_records_the_end_without_an_app(data_dir) -> None:  # type: ignore[no-untyped-def]
    run = _cli(data_dir, "run", "--", "sh", "-c", "echo hi; exit 5")
    assert run.returncode == 0 and ("running; run folder" in run.stdout or "ended (exit 5)" in run.stdout), (
        run.stderr
    )
    job_id = int(run.stdout.split()[1])
    follow = _cli(data_dir, "logs", str(job_id), "--follow")
    assert follow.stdout == "hi\n"
    shown = json.loads(_cli(data_dir, "show", str(job_id), "--json").stdout)["job"]
    for _ in range(50):
        if shown["state"] != "RUNNING":
            break
        shown = json.loads(_cli(data_dir, "show", str(job_id), "--json").stdout)["job"]
    assert shown["state"] == "FAILED" and shown["outcome"] == "exit 5"  # recorded by the supervisor itself


def test_a_multi_line_command_gets_a_one_line_name(data_dir) -> None:  # type: ignore[no-untyped-def]
    """`jobs run -- python3 -c "<script>"` without --name: the listing keeps one line per job."""
    import subprocess
    import sys

    from msquant_desktop.domain.jobs import DEFAULT_NAME_CHARS, name_from_command

    script = "import sys\nfor i in range(3):\n\tprint(i)\n" + "x = 1\n" * 40
    cli = [sys.executable, "-m", "msquant_desktop", "--data-dir", str(data_dir), "jobs"]
    done = subprocess.run(
        [*cli, "run", "--", sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    listing = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert len(listing) == 2, listing  # the header and the job
    name = name_from_command(f"{sys.executable} -c {script}")
    assert "\n" not in name and "\t" not in name and len(name) == DEFAULT_NAME_CHARS and name.endswith("…")
    assert name_from_command("sleep   5") == "sleep 5"
