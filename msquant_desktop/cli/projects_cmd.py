"""`project-run` (the pinned-run wrapper of local project jobs) and `project-compose` (Hydra helper)."""

from __future__ import annotations

import argparse
import json
import sys

from msquant_desktop.cli.context import CliContext
from msquant_desktop.projects.hydra_config import HydraError, compose_yaml
from msquant_desktop.projects.runner import PinnedRunError, exec_command, prepare_pinned_tree


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    comp = subparsers.add_parser(
        "project-compose",
        help="compose a Hydra config with overrides; prints one JSON line {ok, yaml | error}",
    )
    comp.add_argument("--config-dir", required=True)
    comp.add_argument("--config-name", required=True)
    comp.add_argument("overrides", nargs=argparse.REMAINDER, help="-- then key=value overrides")
    comp.set_defaults(func=_compose)


def _strip_dashes(values: list[str]) -> list[str]:
    return values[1:] if values and values[0] == "--" else values


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


def _compose(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        text = compose_yaml(args.config_dir, args.config_name, _strip_dashes(args.overrides))
    except HydraError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "yaml": text}))
    return 0
