"""Hydra, asked in the project's own Python: discovery, composition, launch plans.

Nothing here imports Hydra.  Every question goes to a child process running the project's interpreter
with `assets/hydra/hydra_probe.py`, a self-contained script that needs only the project's hydra-core,
so its version, plugins and structured configs apply (and Hydra's global state never lives in the
GUI).  Which config to ask about comes from the entry points found by reading the project's files
(`entry_points.py`), else from the conventional folders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from msquant_desktop.domain.project_configs import (
    ComposedPlan,
    HydraLayout,
    PythonEnv,
    SweepMember,
    choose_entry_point,
    groups_from_probe,
)
from msquant_desktop.projects.entry_points import ProjectScan, project_files, scan_project
from msquant_desktop.projects.environment import find_environment
from msquant_desktop.runtime import self_command

log = logging.getLogger(__name__)

CONFIG_DIR_CANDIDATES = ("conf", "configs", "config", "cfgs", "cfg")
PROBE_TIMEOUT_S = 120.0
PROBE_SCRIPT = ("assets", "hydra", "hydra_probe.py")


class HydraError(RuntimeError):
    """Hydra refused (the message is Hydra's own) or could not be asked at all (the message says why)."""


def probe_script() -> str:
    return str(resources.files("msquant_desktop").joinpath(*PROBE_SCRIPT))


def probe_command(env: PythonEnv) -> list[str]:
    """How to run the probe in `env`: its interpreter with the script, or (a bundle falling back to
    itself) this program's `project-probe` subcommand."""
    if env.python:
        return [env.python, probe_script()]
    return self_command("project-probe")


def _probe_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # never this app's standard library in the project's interpreter
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # importing structured configs leaves no __pycache__
    return env


def run_probe(env: PythonEnv, request: dict[str, Any], timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """One request to the probe; the answer (ok or Hydra's refusal) or HydraError when none came."""
    argv = probe_command(env)
    cwd = request.get("root")
    try:
        proc = subprocess.run(
            argv,
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_probe_env(),
            cwd=cwd if cwd and Path(cwd).is_dir() else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise HydraError(f"Hydra did not answer within {timeout:.0f} s ({argv[0]})") from exc
    except OSError as exc:
        raise HydraError(f"cannot run the project's Python {argv[0]}: {exc}") from exc
    lines = proc.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.strip()[-2000:] or f"exit {proc.returncode}"
        raise HydraError(f"{argv[0]} could not run the Hydra probe: {tail}") from None
    if not isinstance(answer, dict):
        raise HydraError(f"the Hydra probe answered {answer!r}")
    return answer


def _checked(answer: dict[str, Any]) -> dict[str, Any]:
    if not answer.get("ok"):
        raise HydraError(str(answer.get("error") or "Hydra refused"))
    return answer


# -- discovery --------------------------------------------------------------------------------------


def conventional_config_dir(root: Path) -> Path | None:
    for name in CONFIG_DIR_CANDIDATES:
        candidate = root / name
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    return None


@dataclass(frozen=True)
class Discovery:
    """What a project is made of: its Python, its entry points, and the layout its Hydra reports
    (None: no Hydra config, plain commands; `problem` says why when Hydra could not be asked)."""

    env: PythonEnv
    scan: ProjectScan
    layout: HydraLayout | None
    problem: str | None = None


def discover(
    root: str | Path,
    *,
    python: str | None = None,
    entry_script: str | None = None,
    config_dir: str | None = None,
    config_name: str | None = None,
    command: str = "",
    validate: bool = True,
) -> Discovery:
    """Find the environment and entry points, then ask the project's Hydra for its layout.

    `config_dir` / `config_name` are the user's settings and win over the entry point's.
    """
    root = Path(root)
    env = find_environment(root, python)
    scan = scan_project(root)
    entry = choose_entry_point(scan.entry_points, entry_script, command)
    module: str | None = None
    source = "entry point"
    if config_dir:
        chosen = Path(config_dir) if os.path.isabs(config_dir) else root / config_dir
        if not chosen.is_dir():
            return Discovery(env, scan, None, f"the config folder {chosen} does not exist")
        directory: Path | None = chosen
        source = "settings"
    elif entry is not None:
        module = entry.config_module
        directory = None
        if entry.config_dir is not None:
            directory = Path(entry.config_dir) if os.path.isabs(entry.config_dir) else root / entry.config_dir
            if not directory.is_dir():
                return Discovery(
                    env,
                    scan,
                    None,
                    f"{entry.script} names the config folder {directory}, which does not exist",
                )
    else:
        directory = conventional_config_dir(root)
        source = "convention"
        if directory is None:
            return Discovery(env, scan, None)
    name = config_name or (entry.config_name if entry else None)
    layout = HydraLayout(
        root=str(root),
        config_dir=str(directory) if directory else None,
        primary=name,
        primaries=(),
        groups=(),
        env=env,
        entry=entry,
        entry_points=scan.entry_points,
        config_module=module,
        version_base=entry.version_base if entry else None,
        has_version_base=bool(entry and entry.has_version_base),
        structured_modules=scan.structured_modules,
        source=source,
    )
    request = {"op": "layout", "validate": validate, **layout.probe_request()}
    if name is None:
        request.pop("config_name")
    try:
        answer = _checked(run_probe(env, request))
    except HydraError as exc:
        return Discovery(env, scan, None, str(exc))
    primaries = tuple(answer.get("primaries", []))
    primary = answer.get("config_name")
    return Discovery(
        env,
        scan,
        HydraLayout(
            root=layout.root,
            config_dir=layout.config_dir,
            primary=str(primary) if primary else None,
            primaries=primaries,
            groups=groups_from_probe(answer),
            env=env,
            hydra_version=str(answer.get("hydra_version", "")),
            entry=entry,
            entry_points=scan.entry_points,
            config_module=module,
            version_base=layout.version_base,
            has_version_base=layout.has_version_base,
            structured_modules=scan.structured_modules,
            sweeper=answer.get("sweeper"),
            warnings=tuple(answer.get("warnings", [])),
            source=source,
        ),
    )


def layout_signature(root: str | Path, settings: dict[str, Any]) -> str:
    """Changes whenever what Hydra would report may change: the settings, the project's Python and
    YAML files, or the packages installed in its environment (a plugin added)."""
    root = Path(root)
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    env = find_environment(root, settings.get("python"))
    prefix = Path(env.prefix) if env.prefix else Path(sys.prefix)
    watched = [root / "environment.yml", root / "environment.yaml", *prefix.glob("lib/python*/site-packages")]
    if env.python:
        watched.append(Path(env.python))
    for path in [*watched, *project_files(root, (".py", ".yaml", ".yml"))]:
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    digest.update(str(env).encode())
    return digest.hexdigest()


# -- composition ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composed:
    yaml: str
    hydra_yaml: str | None = None
    resolved_yaml: str | None = None
    resolve_error: str | None = None


def compose(
    layout: HydraLayout,
    overrides: Sequence[str],
    *,
    hydra: bool = False,
    resolve: bool = False,
    root: str | None = None,
) -> Composed:
    """The job config for `overrides` (and on request the `hydra:` section and resolved values), as
    the project's Hydra composes it in `root` (default: the project's work tree)."""
    request = {
        "op": "compose",
        "overrides": list(overrides),
        "hydra": hydra,
        "resolve": resolve,
        **layout.probe_request(root),
    }
    answer = _checked(run_probe(layout.env, request))
    return Composed(
        yaml=str(answer["yaml"]),
        hydra_yaml=answer.get("hydra_yaml"),
        resolved_yaml=answer.get("resolved_yaml"),
        resolve_error=answer.get("resolve_error"),
    )


def compose_each(layout: HydraLayout, override_sets: Sequence[Sequence[str]]) -> list[str | None]:
    """Compose once per set of overrides in one Hydra start: None where it composed, else Hydra's
    message."""
    request = {
        "op": "compose_each",
        "override_sets": [list(s) for s in override_sets],
        **layout.probe_request(),
    }
    answer = _checked(run_probe(layout.env, request))
    return [None if r.get("ok") else str(r.get("error")) for r in answer.get("results", [])]


def plan(
    layout: HydraLayout, overrides: Sequence[str], *, multirun: bool = False, root: str | None = None
) -> ComposedPlan:
    """What a launch runs: one composed config, or each member of a sweep (`a=1,2 b=x,y`, or
    `hydra.sweeper.params` under --multirun) with its own overrides, or, for an optimizing sweeper
    (optuna, ...), one --multirun job."""
    request = {"op": "plan", "overrides": list(overrides), "multirun": multirun, **layout.probe_request(root)}
    answer = _checked(run_probe(layout.env, request))
    sweep = answer.get("sweep") or {}
    return ComposedPlan(
        members=tuple(SweepMember(tuple(m["overrides"]), str(m["yaml"])) for m in answer.get("members", [])),
        sweeper=sweep.get("sweeper"),
        mode=sweep.get("mode"),
        warnings=tuple(answer.get("warnings", [])),
    )
