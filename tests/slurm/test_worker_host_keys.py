"""A cluster worker waits for the user after a host-key problem and retries anything else, decided
by the exception's type (HostKeyChanged, HostKeyRevoked, UnknownHostKey), never by its words: a
key file whose path holds "CHANGED" is an ordinary failure and is retried."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.store import connect

pytestmark = pytest.mark.slurm


def statuses_of(qtbot, profile, tmp_path: Path, seconds: float) -> list[str]:  # type: ignore[no-untyped-def]
    from msquant_desktop.services.cluster_service import ClusterService

    save_profiles(tmp_path / "clusters.yaml", [profile])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"), tmp_path / "runs", tmp_path / "clusters.yaml", Path("/nonexistent")
    )
    seen: list[str] = []
    service.sig_cluster_status.connect(lambda _name, status: seen.append(status))
    try:
        qtbot.wait(int(seconds * 1000))
    finally:
        service.shutdown()
    return seen


def test_a_revoked_or_changed_host_key_waits_for_the_user(qtbot, testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    revoked = tmp_path / "known_hosts_revoked"
    revoked.write_text(
        f"@revoked {testbed.host_label} {testbed.host_key}\n{testbed.host_label} {testbed.host_key}\n"
    )
    seen = statuses_of(qtbot, testbed.profile(revoked), tmp_path / "r", 3.5)
    assert seen.count("connecting") == 1, seen  # no retry on a timer
    assert "REVOKED" in seen[-1] and "retry in" not in seen[-1]

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(
        f"{testbed.host_label} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    )
    seen = statuses_of(qtbot, testbed.profile(changed), tmp_path / "c", 3.5)
    assert seen.count("connecting") == 1, seen
    assert "has CHANGED" in seen[-1] and "retry in" not in seen[-1]


def test_an_ordinary_failure_that_says_changed_is_retried(qtbot, testbed, known_hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing_key = tmp_path / "CHANGED-key"  # does not exist: the server refuses us, naming this path
    seen = statuses_of(
        qtbot, testbed.profile(known_hosts, ssh_key_path=str(missing_key)), tmp_path / "k", 3.5
    )
    failures = [s for s in seen if s.startswith("failed")]
    assert failures and "CHANGED-key" in failures[0] and "retry in" in failures[0], seen
    assert seen.count("connecting") >= 2, seen  # retried after 1 s, then 2 s


def test_the_host_key_dialog_makes_the_cluster_wait_not_fail(qtbot, testbed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    seen = statuses_of(qtbot, testbed.profile(empty), tmp_path / "u", 1.5)
    assert seen[-1].startswith(f"waiting: confirm the host key of {testbed.host_label} (SHA256:"), seen
    assert not any(s.startswith("failed") for s in seen), seen


def test_no_passphrase_prompt_until_the_user_asks(qtbot, testbed, known_hosts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An encrypted key: the app's own connection waits quietly; Test connection asks."""
    from msquant_desktop.services.cluster_service import ClusterService

    locked = tmp_path / "locked_key"
    locked.write_bytes(Path(testbed.key).read_bytes())
    locked.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "pass phrase", "-f", str(locked)], check=True)
    save_profiles(tmp_path / "clusters.yaml", [testbed.profile(known_hosts, ssh_key_path=str(locked))])
    service = ClusterService(
        connect(tmp_path / "db.sqlite3"), tmp_path / "runs", tmp_path / "clusters.yaml", Path("/nonexistent")
    )
    prompts: list[str] = []
    service.sig_passphrase_needed.connect(lambda _name, why: prompts.append(why))
    try:
        qtbot.waitUntil(lambda: service.status("testbed").startswith("waiting:"), timeout=10_000)
        assert "passphrase" in service.status("testbed") and "waiting" in service.summary()
        qtbot.wait(300)
        assert prompts == []  # nothing pops up at start-up
        service.test_connection("testbed")
        qtbot.waitUntil(lambda: bool(prompts), timeout=5000)
        assert str(locked) in prompts[0]
        with qtbot.waitSignal(service.sig_tested, timeout=15_000) as tested:
            service.provide_passphrase("testbed", "pass phrase")
            service.test_connection("testbed")
        assert tested.args[1].startswith("connected") and "ssh -G" in tested.args[1], tested.args
    finally:
        service.shutdown()
