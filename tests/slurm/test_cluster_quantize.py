"""Quantization as a SLURM job on the real testbed, from `slurm quantize` in a child process.

The cluster's Python is a real interpreter that has llmcompressor, torch and transformers but not
this app: a venv of the system's Python whose only addition is a `.pth` line naming this test
environment's site-packages (a `.pth` line adds a folder to `sys.path` without running the `.pth`
files in it, so the editable install's finder never loads).  The test proves `import
msquant_desktop` fails in it.  The worker reaches the job as the uploaded zipapp.

With MSQUANT_SCREENSHOT=PATH the form test saves a picture of the form set up for the cluster.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from msquant_desktop.domain.slurm import ClusterProfile, SlurmSubmission
from msquant_desktop.services.cluster_download import MARKER
from msquant_desktop.services.cluster_jobs import log_events
from msquant_desktop.slurm.profiles import save_profiles
from msquant_desktop.slurm.script import ScriptError, render_script, sbatch_directives
from tests.conftest import run_cli_argv
from tests.quantize.conftest import demo_model  # noqa: F401  (the session's demo model)
from tests.slurm.cluster_fixtures import base_python, cli_for, run_slurm
from tests.slurm.cut_proxy import CutProxy

# -- without the testbed -------------------------------------------------------------------------------


def test_events_are_read_from_a_merged_log() -> None:
    # stdout and stderr share slurm.log: a tqdm redraw without a newline can stand before an event.
    text = (
        "msquant: running in /w on node1\n"
        'Compressing model:  50%|#####     | 4/8 [00:01<00:01]\r@@MSQUANT-EVENT@@ {"type":"stage","stage":"Finishing"}\n'
        '@@MSQUANT-EVENT@@ {"type":"progress","stage":"Done","fraction":1.0}\n'
        "@@MSQUANT-EVENT@@ {not json\n"
        'a line that mentions @@MSQUANT-EVENT@@ {"type":"result","kind":"quantize"}\n'
    )
    events = log_events(text)
    assert [e["type"] for e in events] == ["stage", "progress", "result"]


def _command_job(tmp_path: Path, **changes: object) -> SlurmSubmission:
    upload = tmp_path / "tool.pyz"
    upload.write_bytes(b"PK")
    values: dict[str, object] = {
        "cluster": "c",
        "job_name": "quantize-w4a16",
        "repo_url": "",
        "commit": "",
        "command": ("/opt/py/bin/python", "tool.pyz", "quantize", "--out", "/x y/$(rm -rf ~)"),
        "no_repo": True,
        "uploads": ((str(upload), "tool.pyz"),),
    }
    values.update(changes)
    return SlurmSubmission(**values)  # type: ignore[arg-type]


def test_a_job_without_a_repository_renders_no_clone(tmp_path: Path) -> None:
    profile = ClusterProfile("c", "u@h", "/w")
    script = render_script(_command_job(tmp_path), profile, "run1", "quantize-w4a16-abc", "/w")
    assert "git clone" not in script and "git checkout" not in script
    assert "'/x y/$(rm -rf ~)'" in script  # every word quoted
    assert "#SBATCH --chdir=/w/run1" in sbatch_directives(script)
    for bad, words in (
        ((("/nonexistent/file", "tool.pyz"),), "is not a file here"),
        (((str(tmp_path / "tool.pyz"), "../escape"),), "not a plain file name"),
        (((str(tmp_path / "tool.pyz"), "job.sbatch"),), "is taken"),
    ):
        with pytest.raises(ScriptError, match=words):
            render_script(_command_job(tmp_path, uploads=bad), profile, "run1", "n", "/w")
    with pytest.raises(ScriptError, match="only for a job without a repository"):
        render_script(
            _command_job(tmp_path, no_repo=False, repo_url="/r.git", commit="a" * 40),
            profile,
            "run1",
            "n",
            "/w",
        )


REAL_REPO_IDS = (  # public model repositories on the hub, as their pages name them
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen2.5-0.5B",
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "microsoft/Phi-3-mini-4k-instruct",
)


def test_repo_ids_follow_the_hubs_rules() -> None:
    from msquant_desktop.domain.quantize import HubModel, parse_hub_model

    for repo_id in REAL_REPO_IDS:
        assert parse_hub_model(repo_id) == HubModel(repo_id)
    assert parse_hub_model("Qwen/Qwen2.5-0.5B@main") == HubModel("Qwen/Qwen2.5-0.5B", "main")
    commit = "060db6499f32faf8b98477b0a26969ef7d8b9987"
    assert parse_hub_model(f"Qwen/Qwen2.5-0.5B@{commit}") == HubModel("Qwen/Qwen2.5-0.5B", commit)
    for bad in (
        "gpt2",  # no org: the cache folder is unambiguous only as org/name
        "org/name/extra",
        "-org/name",
        "org/.name",
        "org/name-",
        "org--x/name",  # `--` joins the parts in the cache's folder names
        "org/na..me",
        "../etc/passwd",
        "org/na me",
        "org/name;rm -rf ~",
        "org/$(id)",
        "org/`id`",
        "org/name\n",
        "org/name\nmore",
        "org/nämé",
        "org/name@",
        "org/name@re/fs",
        "org/name@..",
        "org/name@-x",
        "org/" + "x" * 97,
        "",
    ):
        assert parse_hub_model(bad) is None, bad


def _run_probe(env: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    from msquant_desktop.slurm.remote_tools import _PROBE

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_probe_looks_where_huggingface_hub_looks(tmp_path: Path) -> None:
    # A real interpreter runs the probe: HF_HUB_CACHE before HF_HOME/hub before ~/.cache, refs/<rev>
    # read, a commit hash taken as it is; the cache is laid out as `hf download` leaves it.
    from tests.quantize.test_checks import write_model_folder
    from tests.quantize.test_hf_cache import MAIN, OLD, cache_repo

    model = write_model_folder(tmp_path / "src")
    home = tmp_path / "hf-home"
    snapshot = cache_repo(home / "hub", "org/tiny", model, MAIN, refs=("main",))
    (home / "hub" / "models--org--tiny" / "snapshots" / OLD).mkdir()  # a download cut before config.json
    (home / "hub" / "models--org--tiny" / "refs" / "broken").write_text(OLD)
    refs = ("org/tiny", f"org/tiny@{MAIN}", "org/tiny@v2", "org/tiny@broken", "org/other")
    found = _run_probe({"HF_HOME": str(home), "HOME": str(tmp_path)}, *(f"--hub={r}" for r in refs))
    states = {ref: entry["state"] for ref, entry in found["hub"].items()}
    assert states == {
        "org/tiny": "model",
        f"org/tiny@{MAIN}": "model",
        "org/tiny@v2": "no-revision",
        "org/tiny@broken": "no-config",
        "org/other": "absent",
    }
    entry = found["hub"]["org/tiny"]
    assert entry["path"] == str(snapshot) and entry["commit"] == MAIN
    assert entry["cache"] == str(home / "hub") and entry["folder"] == str(home / "hub" / "models--org--tiny")
    assert found["weights"][str(snapshot)] == (model / "model.safetensors").stat().st_size  # links followed
    # HF_HUB_CACHE wins over HF_HOME; without either, ~/.cache/huggingface/hub.
    elsewhere = _run_probe(
        {"HF_HOME": str(home), "HF_HUB_CACHE": str(tmp_path / "other"), "HOME": str(tmp_path)},
        "--hub=org/tiny",
    )
    assert elsewhere["hub"]["org/tiny"] == {
        "cache": str(tmp_path / "other"),
        "folder": str(tmp_path / "other" / "models--org--tiny"),
        "revision": "main",
        "state": "absent",
    }
    default = _run_probe({"HOME": str(tmp_path)}, "--hub=org/tiny")
    assert default["hub"]["org/tiny"]["cache"] == str(tmp_path / ".cache" / "huggingface" / "hub")


def test_a_bad_model_name_is_refused_before_connecting(tmp_path: Path) -> None:
    # The client's connection was never opened (and its port answers nothing): a refusal that is a
    # ClusterCheckError, not an SshError, was decided before any connection was tried.
    from msquant_desktop.services.cluster_quantize import ClusterCheckError, check_cluster_python
    from msquant_desktop.slurm.client import SlurmClient
    from msquant_desktop.slurm.connection import SshConnection, SshError, target_for_profile

    profile = ClusterProfile("c", "u@127.0.0.1", "/w", port=1)
    client = SlurmClient(profile, SshConnection(target_for_profile(profile, ssh_config=Path("/nonexistent"))))
    for bad in ("org/name;id", "org/na me", "../x/y", "relative/dir/model", "org/name\n", "/models/a\nb"):
        with pytest.raises(ClusterCheckError, match="model") as refused:
            check_cluster_python(client, "python3", (bad,))
        assert "\n" not in str(refused.value)
    assert "neither an absolute folder on the cluster nor a Hugging Face repo id" in str(
        pytest.raises(ClusterCheckError, check_cluster_python, client, "python3", ("org/a;b",)).value
    )
    with pytest.raises(SshError):  # a good repo id goes on to ask the cluster
        check_cluster_python(client, "python3", ("Qwen/Qwen2.5-0.5B",))


# -- on the testbed -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubCopy:
    repo_id: str
    snapshot: Path
    commit: str


@pytest.fixture(scope="module")
def cluster_hub(testbed, cluster_model: Path) -> Iterator[HubCopy]:  # type: ignore[no-untyped-def]
    """The demo model in the test user's own Hugging Face cache (its `~/.cache/huggingface/hub`, where
    huggingface_hub looks when nothing in the login environment says otherwise), as `hf download`
    leaves it, under a repo id of its own (the test user's home may be shared by other testbeds)."""
    from tests.quantize.test_hf_cache import MAIN, cache_repo

    home = Path(pwd.getpwnam(testbed.user).pw_dir)
    hub = home / ".cache" / "huggingface" / "hub"
    subprocess.run(["runuser", "-u", testbed.user, "--", "mkdir", "-p", str(hub)], check=True)
    repo_id = f"msquant-test/demo-tiny-{secrets.token_hex(4)}"
    snapshot = cache_repo(hub, repo_id, cluster_model, MAIN, refs=("main",))
    folder = snapshot.parent.parent
    (folder / "snapshots" / ("c" * 40)).mkdir()  # `broken` names a download cut before config.json
    (folder / "refs" / "broken").write_text("c" * 40)
    subprocess.run(["chown", "-R", testbed.user, str(folder)], check=True)
    yield HubCopy(repo_id, snapshot, MAIN)
    shutil.rmtree(folder, ignore_errors=True)


def _names_in_queue(testbed) -> str:  # type: ignore[no-untyped-def]
    return testbed.run_as_root("squeue", "-a", "-h", "-t", "all", "-o", "%j")


@pytest.mark.slurm
def test_missing_python_or_llmcompressor_is_refused_before_submitting(
    testbed, profile, cluster_python, cluster_model, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    prefix, clusters = cli_for(tmp_path, profile)
    before = _names_in_queue(testbed)
    args = (
        "testbed",
        "--model",
        str(cluster_model),
        "--scheme",
        "W4A16",
        "--out",
        str(cluster_model.parent / "out" / "never"),
    )
    missing = run_slurm(prefix, "quantize", clusters, *args, "--python", "/nonexistent/bin/python")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "slurm: the Python /nonexistent/bin/python cannot be run on testbed: "
        "bash: line 1: /nonexistent/bin/python: No such file or directory"
    ]
    bare = run_slurm(prefix, "quantize", clusters, *args, "--python", base_python(testbed.user) or "python3")
    assert bare.returncode == 1 and len(bare.stderr.strip().splitlines()) == 1
    assert "has no llmcompressor, torch, transformers: install llmcompressor there" in bare.stderr
    unset = run_slurm(prefix, "quantize", clusters, *args)  # no --python and no `python:` in the profile
    assert unset.returncode == 1 and "no Python is set for testbed" in unset.stderr
    no_model = run_slurm(
        prefix, "evaluate", clusters, "testbed", "--model", "/nonexistent/model", "--python", cluster_python
    )
    assert no_model.returncode == 1
    assert no_model.stderr.strip().splitlines()[-1] == (
        "slurm: model /nonexistent/model on testbed does not exist: give the model's folder on the cluster"
    )
    uncached = run_slurm(
        prefix, "evaluate", clusters, "testbed", "--model", "Qwen/Qwen2.5-0.5B", "--python", cluster_python
    )
    assert uncached.returncode == 1
    home = pwd.getpwnam(testbed.user).pw_dir
    assert uncached.stderr.strip().splitlines() == [
        "slurm: model Qwen/Qwen2.5-0.5B is not in the Hugging Face cache on testbed "
        f"(no {home}/.cache/huggingface/hub/models--Qwen--Qwen2.5-0.5B): "
        "run `hf download Qwen/Qwen2.5-0.5B` on testbed to fetch it"
    ]
    bad_name = run_slurm(
        prefix,
        "quantize",
        clusters,
        "testbed",
        "--model",
        "Qwen/Qwen2.5;id",
        *args[3:],
        "--python",
        cluster_python,
    )
    assert bad_name.returncode == 1 and len(bad_name.stderr.strip().splitlines()) == 1
    assert "'Qwen/Qwen2.5;id' is neither an absolute folder" in bad_name.stderr
    bad_memory = run_slurm(prefix, "quantize", clusters, *args, "--python", cluster_python, "--mem", "lots")
    assert bad_memory.returncode == 1
    assert bad_memory.stderr.strip().splitlines()[-1] == (
        "slurm: memory 'lots': use a number with an optional K/M/G/T unit"
    )
    status = run_slurm(prefix, "status", clusters, "--json")
    assert json.loads(status.stdout)["jobs"] == []  # nothing was stored, nothing sent
    # Nothing new in the queue (earlier tests' finished jobs may leave it meanwhile).
    assert set(_names_in_queue(testbed).split()) <= set(before.split())


@pytest.mark.slurm
def test_a_repo_id_is_found_in_the_clusters_hf_cache(  # type: ignore[no-untyped-def]
    client, cluster_python, cluster_model, cluster_hub, tmp_path
) -> None:
    from msquant_desktop.domain.quantize import QuantizeRequest
    from msquant_desktop.services.cluster_quantize import (
        ClusterCheckError,
        ClusterResources,
        check_cluster_python,
        prepare_quantize,
    )

    out = str(cluster_model.parent / "out" / f"hub-{secrets.token_hex(4)}")
    for given in (
        cluster_hub.repo_id,
        f"{cluster_hub.repo_id}@main",
        f"{cluster_hub.repo_id}@{cluster_hub.commit}",
    ):
        request = QuantizeRequest(model=given, scheme="W4A16", out=out)
        prepared = prepare_quantize(client, request, cluster_python, ClusterResources(), tmp_path / "workers")
        command = list(prepared.submission.command)
        assert command[command.index("--model") + 1] == str(
            cluster_hub.snapshot
        )  # the job reads the snapshot
        assert prepared.meta["quantize"]["model"] == str(cluster_hub.snapshot)
        assert prepared.meta["hub_models"] == {
            "model": {
                "repo_id": cluster_hub.repo_id,
                "revision": given.partition("@")[2] or "main",
                "commit": cluster_hub.commit,
                "path": str(cluster_hub.snapshot),
            }
        }
        weights = (cluster_model / "model.safetensors").stat().st_size
        assert prepared.python.weights[str(cluster_hub.snapshot)] == weights
    folder = cluster_hub.snapshot.parent.parent
    for given, words in (
        (
            f"{cluster_hub.repo_id}@v9",
            f"model {cluster_hub.repo_id}@v9: revision v9 is not in the Hugging Face cache on testbed "
            f"({folder}): run `hf download {cluster_hub.repo_id} --revision v9` on testbed to fetch it",
        ),
        (
            f"{cluster_hub.repo_id}@broken",
            f"model {cluster_hub.repo_id}@broken at broken in the Hugging Face cache on testbed ({folder}) "
            f"has no config.json: run `hf download {cluster_hub.repo_id} --revision broken` on testbed to fetch it",
        ),
    ):
        with pytest.raises(ClusterCheckError) as refused:
            check_cluster_python(client, cluster_python, (given,))
        assert str(refused.value) == words


@pytest.fixture
def proxy(testbed) -> Iterator[CutProxy]:  # type: ignore[no-untyped-def]
    with CutProxy(testbed.port) as cut:
        yield cut


@pytest.mark.slurm
def test_w4a16_on_the_cluster_survives_a_dropped_connection(  # type: ignore[no-untyped-def]
    testbed, known_hosts, proxy, cluster_python, cluster_model, cluster_hub, tmp_path
) -> None:
    # Through the proxy (its host key recorded for the proxy's port); the profile's `python:` is used
    # when --python is not given.
    known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {testbed.host_key}\n")
    profile = testbed.profile(known_hosts, port=proxy.port, python=cluster_python)
    prefix, clusters = cli_for(tmp_path, profile)
    out = cluster_model.parent / "out" / f"w4a16-{secrets.token_hex(4)}"
    argv = [*prefix, "quantize", "--clusters", str(clusters), "testbed"]
    argv += [
        "--model",
        str(cluster_model),
        "--scheme",
        "W4A16",
        "--out",
        str(out),
        "--gpu-type",
        "a100",
        "--gpus",
        "1",
        "--time",
        "10",
        "--wait",
    ]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(child.stderr or []), daemon=True).start()
    lines: list[str] = []
    cut_after = -1
    deadline = time.monotonic() + 400
    assert child.stdout is not None
    slurm_id = ""

    def resume_once_reconnected() -> None:
        """The job was held while the network was gone (a fast machine would otherwise finish it
        before the CLI is back, and nothing would show that tracking resumed mid-run)."""
        until = time.monotonic() + 120
        while time.monotonic() < until and not any("reconnected" in x for x in stderr):
            time.sleep(0.1)
        testbed.run_as_root("scontrol", "resume", slurm_id)

    for line in child.stdout:
        lines.append(line.rstrip("\n"))
        if " as SLURM job " in line:
            slurm_id = line.split(" as SLURM job ", 1)[1].split()[0]
        if cut_after < 0 and "RUNNING" in line and "Loading libraries" in line:
            testbed.run_as_root("scontrol", "suspend", slurm_id)
            proxy.refusing = True  # the network is gone for a while, then back
            proxy.cut()
            cut_after = len(lines)
            threading.Timer(3.0, lambda: setattr(proxy, "refusing", False)).start()
            threading.Thread(target=resume_once_reconnected, daemon=True).start()
        assert time.monotonic() < deadline, lines
    assert child.wait(timeout=60) == 0, "\n".join(lines + stderr)
    assert lines[0].startswith(
        f"testbed: {cluster_python} (Python {sys.version_info.major}.{sys.version_info.minor}."
    )
    assert "llmcompressor 0." in lines[0]
    assert cut_after > 0, lines
    text = "\n".join(stderr)
    assert "connection lost" in text and "reconnected" in text
    # Progress went on after the cut, up to the end.
    after = lines[cut_after:]
    # (The job was held until the CLI was back, so it reconnected to a running job; how many
    # percentages it then sees before the end depends on the machine's speed against the polls.)
    assert any(line.startswith("job 1 ") and "%" in line for line in after), lines
    # Every event was read (polls see only the newest): the run folder keeps them all, in order.
    events = [json.loads(x) for f in (tmp_path / "data").glob("**/runs/*/events.jsonl") for x in f.open()]
    stages = [e.get("stage") for e in events if e["type"] == "progress"]
    assert stages[0] == "Checking inputs" and "Compressing" in stages and stages[-1] == "Done", stages
    assert [e["type"] for e in events].count("result") == 1
    assert any(line.startswith("job 1: COMPLETED") for line in after), lines
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert not out.with_name(out.name + ".partial").exists()
    results = json.loads(
        subprocess.run(
            run_cli_argv("--data-dir", str(tmp_path / "data"), "results", "--json"),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["results"]
    assert [(r["scheme"], r["output"], r["cluster"]) for r in results] == [("W4A16", str(out), "testbed")]
    table = subprocess.run(
        run_cli_argv("--data-dir", str(tmp_path / "data"), "results"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert table.stdout.splitlines()[1].endswith(f"testbed:{out}")
    assert results[0]["size_after"] < results[0]["size_before"]
    # Download: a copy cut short is resumed from its `.partial`, and the folder arrives whole.
    local = tmp_path / "downloaded"
    local.mkdir()
    weights = (out / "model.safetensors").read_bytes()
    (local / "model.safetensors.partial").write_bytes(weights[: len(weights) // 2])
    (local / MARKER).write_text(json.dumps({"cluster": "testbed", "output": str(out)}))  # as a cut leaves it
    fetched = run_slurm(prefix, "download", clusters, "1", "--to", str(local))
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.splitlines()[-1].startswith(f"{len(list(out.iterdir()))} files of testbed:{out}")
    assert (local / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in out.iterdir())
    # Evaluate of that result runs on the cluster too and lands on its Results row.
    evaluated = run_slurm(
        prefix,
        "evaluate",
        clusters,
        "testbed",
        "--model",
        str(out),
        "--original",
        cluster_hub.repo_id,  # the original as a repo id in the cluster's HF cache
        "--seq-len",
        "16",
        "--no-speed",
        "--wait",
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stdout[-2000:] + evaluated.stderr[-2000:]
    assert "job 2: COMPLETED" in evaluated.stdout
    listed = subprocess.run(
        run_cli_argv("--data-dir", str(tmp_path / "data"), "results", "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(listed.stdout)["results"][0]
    assert row["evaluation_job_id"] == 2 and row["evaluation"]["perplexity"] > 1.0, row["evaluation"]
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.store import JobRepository, connect

    conn = connect(resolve_paths(tmp_path / "data").database)
    try:
        meta = JobRepository(conn).get(2).spec.meta  # the job records the repo id and what it ran on
    finally:
        conn.close()
    assert meta["evaluate"]["original"] == str(cluster_hub.snapshot)
    assert meta["hub_models"]["original"]["repo_id"] == cluster_hub.repo_id


@pytest.mark.slurm
def test_cancel_scancels_and_leaves_no_result(
    testbed, profile, cluster_python, cluster_model, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    prefix, clusters = cli_for(tmp_path, profile)
    out = cluster_model.parent / "out" / f"cancelled-{secrets.token_hex(4)}"
    sent = run_slurm(
        prefix,
        "quantize",
        clusters,
        "testbed",
        "--model",
        str(cluster_model),
        "--scheme",
        "W4A16",
        "--out",
        str(out),
        "--python",
        cluster_python,
    )
    assert sent.returncode == 0, sent.stderr
    job_id = sent.stdout.split("job ", 1)[1].split(":", 1)[0]
    slurm_id = sent.stdout.rsplit("SLURM job ", 1)[1].split()[0]
    deadline = time.monotonic() + 120
    while True:  # wait until the worker runs on the node
        status = json.loads(run_slurm(prefix, "status", clusters, "--json").stdout)["jobs"]
        if status[0]["state"] == "RUNNING":
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
    cancelled = run_slurm(prefix, "cancel", clusters, job_id)
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout, cancelled.stderr
    assert slurm_id not in testbed.run_as_root("squeue", "-a", "-h", "-o", "%i")
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    results = subprocess.run(
        run_cli_argv("--data-dir", str(tmp_path / "data"), "results", "--json"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(results.stdout)["results"] == []


@pytest.mark.slurm
def test_the_form_runs_w4a16_on_the_cluster(  # type: ignore[no-untyped-def]
    qtbot, testbed, known_hosts, cluster_python, cluster_model, cluster_hub, tmp_path
) -> None:
    from PySide6.QtWidgets import QWidget

    from msquant_desktop.app import create_services
    from msquant_desktop.config.paths import resolve_paths
    from msquant_desktop.domain.jobs import JobState
    from msquant_desktop.ui.quantize.install import QuantizeUi

    paths = resolve_paths(tmp_path / "app").ensure()
    save_profiles(paths.clusters_file, [testbed.profile(known_hosts, python=cluster_python)])
    services = create_services(paths)
    host = QWidget()
    qtbot.addWidget(host)
    ui = QuantizeUi(services.quantize, host, services.clusters)
    qtbot.addWidget(ui.results)
    progress: list[dict] = []
    running_progress: list[dict] = []  # what arrived while the job was still active

    def on_progress(job_id: int, event: dict) -> None:
        progress.append(event)
        if services.jobs.get(job_id).state.is_active:
            running_progress.append(event)

    services.jobs.sig_job_progress.connect(on_progress)
    try:
        dialog = ui.open_form("")
        target = dialog.cluster_target
        dialog.select_scheme("W4A16")
        target.target_combo.setCurrentText("testbed")
        assert target.python_edit.text() == cluster_python  # the profile's `python:`
        qtbot.waitUntil(lambda: target.gpu_type_combo.count() > 0, timeout=20_000)  # the free-GPU view
        assert "a100" in [target.gpu_type_combo.itemText(i) for i in range(target.gpu_type_combo.count())]
        target.gpu_type_combo.setCurrentText("a100")
        target.gpus_spin.setValue(1)
        target.model_edit.setText(cluster_hub.repo_id)  # found in the cluster's HF cache
        out = cluster_model.parent / "out" / f"form-{secrets.token_hex(4)}"
        target.out_edit.setText(str(out))
        qtbot.waitUntil(dialog.start_button.isEnabled, timeout=30_000)
        assert "llmcompressor 0." in target.status_label.text()
        assert (
            f"{cluster_hub.repo_id} is {cluster_hub.snapshot} in its HF cache" in target.status_label.text()
        )
        assert "GPU memory" in target.memory_label.text() and "A100" in target.memory_label.text()
        shot = os.environ.get("MSQUANT_SCREENSHOT")  # docs/quantize-on-cluster.png is made so
        if shot:
            dialog.resize(760, 760)
            qtbot.wait(200)
            assert dialog.grab().save(shot)
        with qtbot.waitSignal(dialog.sig_submitted, timeout=10_000) as submitted:
            dialog.start_button.click()
        job_id = submitted.args[0]
        qtbot.waitUntil(lambda: services.jobs.get(job_id).state.is_final, timeout=400_000)
        record = services.jobs.get(job_id)
        assert record.state is JobState.COMPLETED, (record.reason, record.result)
        assert record.spec.meta["hub_models"]["model"]["path"] == str(cluster_hub.snapshot)
        assert running_progress, progress  # the bar moved while it ran
        assert progress[-1]["fraction"] == 1.0, progress  # and ended full
        assert record.run_dir is not None
        kept = [json.loads(x) for x in (Path(record.run_dir) / "events.jsonl").open()]
        assert "Compressing" in [e.get("stage") for e in kept if e["type"] == "progress"], kept
        assert (out / "config.json").is_file()
        qtbot.waitUntil(lambda: len(ui.results.model.rows) == 1, timeout=20_000)
        row = ui.results.model.rows[0]
        assert row.job_id == job_id and row.result.output == str(out)
        # Named by its repo id, not by the snapshot folder (a commit hash) the job read.
        assert row.model_name == cluster_hub.repo_id
        assert ui.results.model.index(0, 2).data() == cluster_hub.repo_id
    finally:
        services.shutdown()
