"""`projects show|compose` (a project's Hydra, in its own environment), `project-run` (the pinned-run
wrapper of local project jobs) and `project-probe` (the Hydra probe, for a bundle without a Python)."""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path
from typing import Any

from msquant_desktop.cli.context import CliContext
from msquant_desktop.domain.json_contract import with_schema
from msquant_desktop.projects.hydra_config import HydraError, compose, discover, probe_script
from msquant_desktop.projects.runner import PinnedRunError, exec_command, prepare_pinned_tree


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    projects = subparsers.add_parser(
        "projects",
        help="a project's Hydra entry points, groups and composed config, asked in its own Python",
        description="Reads the project's entry points (never importing them) and asks the project's "
        "own Hydra (its .venv/, venv/, conda env or --python) for groups, choices and configs.",
    )
    actions = projects.add_subparsers(dest="projects_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("show", "entry points, Python, config folder and every group with the choices Hydra accepts"),
        ("compose", "compose the config with overrides (-- then KEY=VALUE...), as Hydra does"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("dir", help="the project's folder")
        _add_options(action, name)
        # Options may follow DIR; the overrides follow `--` (taken verbatim, each one argument).
        action.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        action.set_defaults(func=_guarded(_show if name == "show" else _compose))

    run = subparsers.add_parser(
        "project-run",
        help="check out a project's exact commit in a new worktree, apply a snapshot patch, run a command",
        description="Used as the command of local project jobs: creates `git worktree add --detach DEST "
        "COMMIT`, applies PATCH if given, then replaces itself with CMD running in DEST.",
    )
    run.add_argument("--repo", required=True, help="the project's git work tree")
    run.add_argument("--commit", required=True, help="commit to check out (pinned when the job was made)")
    run.add_argument("--dest", required=True, help="folder for the worktree (usually {run_dir}/src)")
    run.add_argument("--patch", help="binary patch of uncommitted changes to apply on top")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    run.set_defaults(func=_run)

    probe = subparsers.add_parser(
        "project-probe",
        help="the Hydra probe (JSON request on stdin, answer on stdout) in this program's own Python",
    )
    probe.set_defaults(func=_probe)


def _add_options(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--python", help="the interpreter to use instead of the detected one")
    parser.add_argument("--entry", help="the entry point script (relative path) when there are several")
    parser.add_argument("--config-dir", help="the config folder instead of the entry point's")
    parser.add_argument("--config-name", help="the primary config instead of the entry point's")
    if name == "compose":
        parser.add_argument("--hydra", action="store_true", help="also the hydra: section")
        parser.add_argument("--resolve", action="store_true", help="also the resolved values")


def _split_rest(args: argparse.Namespace, name: str) -> list[str]:
    """Options written after DIR are parsed here; what follows `--` is the list of overrides."""
    rest = list(args.rest)
    later = argparse.ArgumentParser(prog=f"msquant-desktop projects {name}", add_help=False)
    _add_options(later, name)
    if "--" in rest:
        cut = rest.index("--")
        parsed, overrides = later.parse_args(rest[:cut]), rest[cut + 1 :]
    else:
        # argparse drops a `--` written right after DIR: then overrides are what no option takes
        # (a Hydra override never starts with "-").
        parsed, overrides = later.parse_known_args(rest)
        stray = [o for o in overrides if o.startswith("-")]
        if stray:
            later.error(f"unrecognized arguments: {' '.join(stray)}")
    for key, value in vars(parsed).items():
        if value not in (None, False):
            setattr(args, key, value)
    return overrides


def _strip_dashes(values: list[str]) -> list[str]:
    return values[1:] if values and values[0] == "--" else values


class ProjectDirError(ValueError):
    """The DIR given is not a folder."""


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace, ctx: CliContext) -> int:
        try:
            return int(handler(args, ctx))
        except ProjectDirError as exc:
            print(f"msquant-desktop projects: {exc}", file=sys.stderr)
            return 1

    return run


def _discover(args: argparse.Namespace, validate: bool) -> Any:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise ProjectDirError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    return discover(
        args.dir,
        python=args.python,
        entry_script=args.entry,
        config_dir=args.config_dir,
        config_name=args.config_name,
        validate=validate,
    )


def _show(args: argparse.Namespace, ctx: CliContext) -> int:
    if _split_rest(args, "show"):
        print("projects show takes no overrides", file=sys.stderr)
        return 2
    found = _discover(args, validate=True)
    layout = found.layout
    report: dict[str, Any] = {
        "entry_points": [e.to_json() for e in found.scan.entry_points],
        "entry_point": layout.entry.script if layout and layout.entry else None,
        "config_dir": layout.config_dir if layout else None,
        "config_module": layout.config_module if layout else None,
        "config_name": layout.primary if layout else None,
        "primaries": list(layout.primaries) if layout else [],
        "python": found.env.python,
        "environment": found.env.source,
        "environment_text": found.env.describe(),
        "hydra_version": layout.hydra_version if layout else None,
        "sweeper": layout.sweeper if layout else None,
        "groups": [g.to_json() for g in layout.groups] if layout else [],
        "warnings": list(layout.warnings) if layout else [],
        "problem": found.problem,
    }
    if args.json:
        print(json.dumps(with_schema(report), indent=2))
    else:
        print(f"Python: {found.env.describe()}")
        for entry in found.scan.entry_points:
            print(f"entry point: {entry.label()}")
        if found.problem:
            print(f"problem: {found.problem}")
        if layout:
            print(
                f"config: {layout.config_dir or layout.config_module} · {layout.primary} (Hydra {layout.hydra_version})"
            )
            for group in layout.groups:
                default = group.default or "(none)"
                print(f"  {group.key} [default {default}]: " + " ".join(c.override for c in group.choices))
                for option, _override, error in group.refused:
                    print(f"    not offered: {option}: {error.splitlines()[0]}")
        elif not found.problem:
            print("no Hydra config found: plain commands only")
    return 1 if found.problem else 0


def _compose(args: argparse.Namespace, ctx: CliContext) -> int:
    overrides = _split_rest(args, "compose")
    found = _discover(args, validate=False)
    answer: dict[str, Any]
    if found.layout is None:
        answer = {"ok": False, "error": found.problem or f"no Hydra config found in {args.dir}"}
    else:
        try:
            composed = compose(found.layout, overrides, hydra=args.hydra, resolve=args.resolve)
        except HydraError as exc:
            answer = {"ok": False, "error": str(exc)}
        else:
            answer = {"ok": True, "yaml": composed.yaml}
            if args.hydra:
                answer["hydra_yaml"] = composed.hydra_yaml
            if args.resolve:
                answer["resolved_yaml"] = composed.resolved_yaml
                answer["resolve_error"] = composed.resolve_error
        answer["python"] = found.env.python
    if args.json:
        print(json.dumps(with_schema(answer)))
    elif answer["ok"]:
        print(answer["yaml"], end="")
        for key in ("hydra_yaml", "resolved_yaml"):
            if answer.get(key):
                print(f"# --- {key.replace('_yaml', '')} ---\n{answer[key]}", end="")
    else:
        print(answer["error"], file=sys.stderr)
    return 0 if answer["ok"] else 1


def _run(args: argparse.Namespace, ctx: CliContext) -> int:
    command = _strip_dashes(args.cmd)
    if not command:
        print("project-run: no command given after --", file=sys.stderr)
        return 2
    try:
        tree = prepare_pinned_tree(args.repo, args.commit, args.dest, args.patch)
        print(f"project-run: commit {args.commit[:12]} checked out in {tree}", file=sys.stderr)
        exec_command(tree, command)
    except (PinnedRunError, OSError) as exc:
        print(f"project-run: {exc}", file=sys.stderr)
        return 1
    return 0  # not reached: exec replaced this process


def _probe(args: argparse.Namespace, ctx: CliContext) -> int:
    # Only a bundle without a project environment gets here: its own hydra-core answers.  (Named
    # here so the bundle's import analysis packs hydra-core; the probe script is not analysed.)
    import hydra  # noqa: F401

    sys.argv = [probe_script()]
    try:
        runpy.run_path(probe_script(), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
