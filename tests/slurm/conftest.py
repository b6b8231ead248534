"""The real SLURM + sshd testbed on loopback, brought up once per test session.

As root (CI) a testbed that does not come up FAILS the tests with its reason; without root the
tests are skipped with the reason, since the daemons cannot be started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from msquant_desktop.domain.slurm import ClusterProfile
from tests.slurm.cluster_fixtures import base_python

SCRIPT = Path(__file__).resolve().parent.parent / "testbed" / "slurm_testbed.sh"


@dataclass(frozen=True)
class Testbed:
    dir: Path
    host: str
    port: int
    user: str
    key: str
    host_key: str  # "ssh-ed25519 AAAA..."
    slurm_conf: str
    workspace: str
    jump_port: int = 0
    """A second sshd that allows TCP forwarding (the cluster's refuses it): the jump host."""
    jump_host_key: str = ""
    jump_log: str = ""
    """The jump sshd's VERBOSE log: one "Accepted publickey" line per login through it."""

    @property
    def host_label(self) -> str:
        return f"[{self.host}]:{self.port}"

    def known_hosts(self, path: Path) -> Path:
        path.write_text(f"{self.host_label} {self.host_key}\n")
        return path

    def profile(self, known_hosts: Path, **changes: object) -> ClusterProfile:
        values: dict[str, object] = {
            "name": "testbed",
            "host": f"{self.user}@{self.host}",
            "port": self.port,
            "ssh_key_path": self.key,
            "known_hosts": str(known_hosts),
            "workspace": self.workspace,
        }
        values.update(changes)
        return ClusterProfile(**values)  # type: ignore[arg-type]

    def run_as_root(self, *argv: str) -> str:
        env = {**os.environ, "SLURM_CONF": self.slurm_conf}
        return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


def testbed_dir() -> Path:
    return Path(os.environ.get("MSQUANT_TESTBED_DIR", Path(tempfile.gettempdir()) / "msquant-slurm-testbed"))


def bring_up(directory: Path) -> Testbed:
    """Start (or reuse) the testbed; raises RuntimeError with the script's own words on failure."""
    proc = subprocess.run(["bash", str(SCRIPT), "up", str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the SLURM testbed did not come up:\n{proc.stderr[-4000:]}")
    data = json.loads((directory / "testbed.json").read_text())
    return Testbed(
        dir=Path(data["dir"]),
        host=data["host"],
        port=int(data["port"]),
        user=data["user"],
        key=data["key"],
        host_key=data["host_key"],
        slurm_conf=data["slurm_conf"],
        workspace=data["workspace"],
        jump_port=int(data["jump_port"]),
        jump_host_key=data["jump_host_key"],
        jump_log=data["jump_log"],
    )


def tear_down(directory: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), "down", str(directory)], capture_output=True, text=True)


@pytest.fixture(scope="session")
def testbed():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("the SLURM testbed needs root (it starts slurmctld, slurmd, munged and sshd)")
    directory = testbed_dir()
    try:
        bed = bring_up(directory)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield bed
    if not os.environ.get("MSQUANT_TESTBED_KEEP"):
        tear_down(directory)


@pytest.fixture
def known_hosts(testbed: Testbed, tmp_path: Path) -> Path:
    return testbed.known_hosts(tmp_path / "known_hosts")


@pytest.fixture
def profile(testbed: Testbed, known_hosts: Path) -> ClusterProfile:
    return testbed.profile(known_hosts)


@pytest.fixture
def client(profile: ClusterProfile):  # type: ignore[no-untyped-def]
    from msquant_desktop.slurm.client import SlurmClient
    from msquant_desktop.slurm.connection import SshConnection, target_for_profile

    connection = SshConnection(target_for_profile(profile, ssh_config=Path("/nonexistent")))
    connection.connect()
    yield SlurmClient(profile, connection)
    connection.close()


@pytest.fixture(scope="session")
def bare_repo(testbed: Testbed) -> tuple[str, str, str]:
    """A local bare repo with two commits the test user can clone: (path, first commit, second commit)."""
    (testbed.dir / "repos").mkdir(mode=0o755, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="repo-", dir=testbed.dir / "repos"))
    root.chmod(0o755)
    work = root / "work"
    work.mkdir()
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    (work / "main.py").write_text(
        "import json, pathlib, sys\n"
        "print('VERSION', pathlib.Path('version.txt').read_text().strip())\n"
        "print('ARGV', json.dumps(sys.argv[1:]))\n"
        "sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)\n"
    )
    (work / "version.txt").write_text("first\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    first = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    (work / "version.txt").write_text("second\n")
    subprocess.run([*git, "commit", "-qam", "second"], check=True)
    second = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    bare = root / "project.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["chown", "-R", testbed.user, str(root)], check=True)  # the job runs as the test user
    return str(bare), first, second


# -- the cluster's Python and the demo model, for the cluster-quantization tests ---------------------
# The cluster's Python is a real interpreter that has llmcompressor, torch and transformers but not
# this app: a venv of the system's Python whose only addition is a `.pth` line naming this test
# environment's site-packages (a `.pth` line adds a folder to `sys.path` without running the `.pth`
# files in it, so the editable install's finder never loads).


@pytest.fixture(scope="module")
def cluster_python(testbed) -> str:  # type: ignore[no-untyped-def]
    base = base_python(testbed.user)
    if base is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} the test user can run")
    venv = testbed.dir / "cluster-python"
    if not (venv / "bin" / "python").exists():
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    # Always this environment's site-packages: a kept testbed may hold a venv made by another
    # checkout, whose environment may be gone.
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(["chmod", "-R", "a+rX", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('msquant_desktop') is None and u.find_spec('llmcompressor') else 1)"
    # As a job gets it: a clean environment (no PYTHONPATH of this test run), another user, cwd /.
    clean = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [shutil.which("runuser") or "/usr/sbin/runuser", "-u", testbed.user, "--", python, "-c", probe],
        capture_output=True,
        cwd="/",
        env=clean,
    )
    assert done.returncode == 0, "the cluster's Python must have llmcompressor and not this app"
    return python


@pytest.fixture(scope="module")
def cluster_model(testbed, request: pytest.FixtureRequest) -> Path:  # type: ignore[no-untyped-def]
    """The demo model where the test user can read it, and a folder it may write outputs to (a kept
    testbed keeps its copy: the session's demo model is built only when the testbed has none)."""
    root = testbed.dir / "cq-models"
    root.mkdir(mode=0o755, exist_ok=True)
    model = root / "demo-tiny"
    if not (model / "model.safetensors").is_file():
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(request.getfixturevalue("demo_model"), model)
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    out = root / "out"  # outputs get unique names: a kept testbed holds those of earlier runs
    out.mkdir(exist_ok=True)
    subprocess.run(["chown", testbed.user, str(out)], check=True)
    return model


SlurmCli = Callable[..., "subprocess.CompletedProcess[str]"]


def slurm_cli(tmp_path: Path, profile: ClusterProfile, timeout: float = 120.0) -> SlurmCli:
    """`cli(COMMAND, ARGS...)` runs `msquant-desktop slurm COMMAND --clusters FILE ARGS...` in a child
    process, with a data folder of its own and a clusters file holding `profile`."""
    from msquant_desktop.slurm.profiles import save_profiles
    from tests.conftest import run_cli_argv

    clusters = tmp_path / "clusters.yaml"
    save_profiles(clusters, [profile])

    def cli(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = run_cli_argv(
            "--data-dir", str(tmp_path / "data"), "slurm", command, "--clusters", str(clusters), *args
        )
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    return cli


def clusters_tab(qtbot: Any, tmp_path: Path, profile: ClusterProfile) -> tuple[Any, Any, Any]:
    """(services, main window, its Clusters tab) of an app whose only cluster is `profile`, shown and
    connected; the caller closes the window and shuts the services down."""
    from msquant_desktop.app import create_main_window, create_services
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.slurm.profiles import save_profiles

    paths = resolve_paths(tmp_path / "app").ensure()
    save_profiles(paths.clusters_file, [profile])
    services = create_services(paths)
    window = create_main_window(services)
    qtbot.addWidget(window)
    window.show()
    window.show_tab("Clusters")
    tab = window.tab_widget.currentWidget()
    qtbot.waitUntil(lambda: "connected" in tab.status_label.text(), timeout=10_000)
    return services, window, tab
