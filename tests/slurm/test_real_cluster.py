"""Against the real SLURM + sshd testbed: host keys, free GPUs, submit never twice, no-accounting end."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from msquant_desktop.domain.jobs import JobState
from msquant_desktop.slurm.client import SlurmClient
from msquant_desktop.slurm.connection import (
    HostKeyChanged,
    SshConnection,
    UnknownHostKey,
    accept_host_key,
    target_for_profile,
)
from msquant_desktop.slurm.script import remote_paths

pytestmark = pytest.mark.slurm
NO_SSH_CONFIG = Path("/nonexistent")


def wait_until(predicate, timeout: float = 30.0, step: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def sbatch_wrap(client: SlurmClient, *args: str) -> str:
    result = client.connection.run(["sbatch", "--parsable", "-o", "/dev/null", *args])
    assert result.rc == 0, result.err
    return result.out.strip()


def test_unknown_and_changed_host_keys_are_refused(testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = target_for_profile(testbed.profile(empty), NO_SSH_CONFIG)
    with pytest.raises(UnknownHostKey) as unknown:
        SshConnection(target).connect()
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(testbed.dir / "ssh" / "host_ed25519.pub")], capture_output=True, text=True
    ).stdout.split()[1]
    assert unknown.value.fingerprint == expected
    assert empty.read_text() == ""  # nothing saved without the user's yes

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(
        "# a comment\n"
        + f"{testbed.host_label} "
        + " ".join(other.with_suffix(".pub").read_text().split()[:2])
        + "\n"
    )
    with pytest.raises(HostKeyChanged) as refused:
        SshConnection(target_for_profile(testbed.profile(changed), NO_SSH_CONFIG)).connect()
    assert refused.value.line == 2 and str(changed) in str(refused.value)

    key_type, key_b64 = testbed.host_key.split()
    accept_host_key(empty, unknown.value.host_label, key_type, key_b64)
    connection = SshConnection(target)
    connection.connect()
    assert connection.run(["id", "-un"]).out.strip() == testbed.user
    connection.close()


def test_free_gpus_match_what_running_jobs_hold(client: SlurmClient) -> None:
    ids = [
        sbatch_wrap(client, "-J", "hold-a100", "--gres=gpu:a100:1", "--wrap", "sleep 6"),
        sbatch_wrap(client, "-J", "hold-h100", "-p", "big", "--gres=gpu:h100:2", "--wrap", "sleep 6"),
        sbatch_wrap(client, "-J", "wants-h100", "-p", "big", "--gres=gpu:h100:1", "--wrap", "sleep 1"),
    ]
    try:
        wait_until(lambda: {e.job_id: e.state for e in client.queue()}.get(ids[1]) == "RUNNING")
        wait_until(lambda: {e.job_id: e.state for e in client.queue()}.get(ids[0]) == "RUNNING")
        view = client.gpu_view()
        held: dict[str, int] = {}
        for entry in client.queue():
            if entry.state == "RUNNING":
                for gpu_type, n in entry.gres.items():
                    held[gpu_type] = held.get(gpu_type, 0) + n
        assert view.by_type["a100"].total == 3 and view.by_type["h100"].total == 2
        assert view.by_type["a100"].used == held["a100"] >= 1
        assert view.by_type["h100"].used == held["h100"] == 2
        assert view.free("h100") == 0 and view.free("a100") == 3 - held["a100"]
        assert view.by_partition["big"]["h100"].used == 2
        assert view.pending.get("h100") == 1  # the job waiting for an h100 is the queue's demand
        per_node = {(r.node, r.gpu_type): r.gpus for r in view.rows}
        assert per_node[("node2", "h100")].free == 0
    finally:
        client.connection.run(["scancel", *ids])


def test_dropped_connection_during_sbatch_is_found_not_resent(testbed, profile, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """sbatch runs, then the connection dies before its answer arrives: the submission says so (the
    job may exist), and the lookup on a new connection finds exactly that one job."""
    from msquant_desktop.domain.jobs import JobKind, JobRecord, JobSpec, JobTarget
    from msquant_desktop.domain.slurm import SlurmSubmission
    from msquant_desktop.services.cluster_jobs import AnswerLost, _submission_dict, send_submission
    from msquant_desktop.slurm.client import CHECK_FOUND

    slow_bin = testbed.dir / "slow-bin"
    slow_bin.mkdir(exist_ok=True)
    for name in ("squeue", "sacct", "scontrol", "scancel", "sinfo"):
        link = slow_bin / name
        if not link.exists():
            link.symlink_to(f"/usr/bin/{name}")
    (slow_bin / "sbatch").write_text('#!/bin/sh\n/usr/bin/sbatch "$@"\nrc=$?\nsleep 3\nexit $rc\n')
    (slow_bin / "sbatch").chmod(0o755)
    slow = profile.__class__(**{**profile.__dict__, "slurm_bin": str(slow_bin)})
    connection = SshConnection(target_for_profile(slow, NO_SSH_CONFIG))
    connection.connect()
    client = SlurmClient(slow, connection)
    submission = SlurmSubmission(
        cluster="testbed", job_name="nodup", repo_url="/nonexistent.git", commit="a" * 40, command=("true",)
    )
    run_id = f"nodup-{time.time_ns()}"
    spec = JobSpec(
        name="nodup",
        argv=("true",),
        kind=JobKind.COMMAND,
        target=JobTarget.SLURM,
        cluster="testbed",
        meta={"run_id": run_id, "slurm_name": f"nodup-{run_id}", "submission": _submission_dict(submission)},
    )
    job = JobRecord(id=1, spec=spec, state=JobState.STARTING, created_at=None)  # type: ignore[arg-type]
    steps: list[str] = []
    threading.Timer(1.5, connection.drop).start()  # while the wrapped sbatch sleeps after submitting
    with pytest.raises(AnswerLost):
        send_submission(client, job, lambda step, _script, _remote: steps.append(step))
    assert steps == ["uploaded", "sbatch-sent"]
    connection = SshConnection(target_for_profile(slow, NO_SSH_CONFIG))
    connection.connect()
    client = SlurmClient(slow, connection)
    remote = remote_paths(client.workspace(), run_id)
    check = wait_until(
        lambda: (c := client.check_submission(remote, f"nodup-{run_id}")).outcome == CHECK_FOUND and c
    )
    listed = client.connection.run(
        ["squeue", "--me", "-h", "-t", "all", "-n", f"nodup-{run_id}", "-o", "%i"]
    ).out.split()
    assert listed == [check.slurm_id]  # exactly one job, the one the lookup found
    connection.close()


def test_without_accounting_the_exit_marker_gives_the_state(testbed, known_hosts, bare_repo) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.domain.slurm import SlurmSubmission
    from msquant_desktop.slurm.script import render_script

    profile = testbed.profile(known_hosts, accounting="off")
    connection = SshConnection(target_for_profile(profile, NO_SSH_CONFIG))
    connection.connect()
    client = SlurmClient(profile, connection)
    assert client.accounting_available() is False
    repo, first, _ = bare_repo
    run_id = f"noacct-{time.time_ns()}"
    submission = SlurmSubmission(
        cluster="testbed", job_name="noacct", repo_url=repo, commit=first, command=("python3", "main.py", "5")
    )
    remote = remote_paths(client.workspace(), run_id)
    slurm_id = client.submit(
        remote,
        render_script(submission, profile, run_id, f"noacct-{run_id}", client.workspace()),
        f"noacct-{run_id}",
    )
    # Aged out: MinJobAge=5 s, after which neither squeue nor scontrol know the job.
    wait_until(lambda: not client.scontrol_job(slurm_id), timeout=60, step=1.0)
    assert slurm_id not in {e.job_id for e in client.queue()}
    final = client.resolve_final(slurm_id, remote)
    assert final is not None
    assert (final.state, final.exit_code, final.source) == (JobState.FAILED, 5, "marker")
    connection.close()


def test_ssh_config_alias_and_encrypted_key(testbed, known_hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A profile naming an ~/.ssh/config alias connects; an encrypted key asks for its passphrase."""
    from msquant_desktop.slurm.connection import PassphraseRequired

    encrypted = tmp_path / "id_encrypted"
    encrypted.write_bytes(Path(testbed.key).read_bytes())
    encrypted.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "s3cret pass", "-f", str(encrypted)], check=True)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host tb\n  HostName {testbed.host}\n  Port {testbed.port}\n  User {testbed.user}\n  IdentityFile {encrypted}\n"
    )
    profile = testbed.profile(known_hosts, host="tb", port=None, ssh_key_path=None)
    target = target_for_profile(profile, ssh_config)
    assert (target.hostname, target.port, target.user, target.key_files) == (
        testbed.host,
        testbed.port,
        testbed.user,
        (str(encrypted),),
    )
    with pytest.raises(PassphraseRequired):
        SshConnection(target).connect()
    connection = SshConnection(target, passphrase="s3cret pass")
    connection.connect()
    assert (
        connection.run(["printf", "%s", "$HOME; echo no"]).out == "$HOME; echo no"
    )  # argv quoted word by word
    connection.close()
