"""A project's Python environment, its Hydra entry points and its config layout.  Standard library only.

The layout is what the project's own Hydra reports (run in the project's interpreter by the probe
child, `assets/hydra/hydra_probe.py`): each picker is a group default of the primary config's
defaults tree (or a top-level group the defaults list does not name), with Hydra's override key and
the choices that Hydra accepts.  The override a choice adds is the probe's string, used verbatim: the
form never re-derives `+` or a package, so "Re-run with changes" gives back exactly what ran.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# -- the project's Python -------------------------------------------------------------------------

ENV_SETTINGS = "settings"
ENV_APP = "app"


@dataclass(frozen=True)
class PythonEnv:
    """The interpreter a project's Hydra runs in, and its local jobs.

    `source` says where it came from: "settings" (chosen by the user), ".venv" / "venv" (found in the
    project), "conda:NAME" (the env named in environment.yml), or "app" (this app's own Python: the
    fallback, which the UI says plainly).  `python` is None only in a bundle falling back to itself.
    """

    python: str | None
    source: str
    prefix: str | None = None  # the environment's root (VIRTUAL_ENV / CONDA_PREFIX)
    note: str = ""  # why the fallback was taken, or what is wrong with the chosen one

    @property
    def is_fallback(self) -> bool:
        return self.source == ENV_APP

    def describe(self) -> str:
        where = self.python or "this app's bundle"
        if self.source == ENV_APP:
            text = f"this app's own Python ({where}): the project has no .venv, venv or conda env"
        elif self.source == ENV_SETTINGS:
            text = f"{where} (chosen in the project's settings)"
        elif self.source.startswith("conda:"):
            text = f"{where} (conda env {self.source[6:]!r} from environment.yml)"
        else:
            text = f"{where} (the project's {self.source}/)"
        return f"{text}; {self.note}" if self.note else text

    def job_env(self, base_path: str) -> tuple[tuple[str, str], ...]:
        """Environment entries for a local job: the env's bin folder first on PATH, like an activation."""
        if self.prefix is None or self.is_fallback:
            return ()
        bin_dir = os.path.join(self.prefix, "bin")
        entries = [("PATH", f"{bin_dir}{os.pathsep}{base_path}" if base_path else bin_dir)]
        if self.source.startswith("conda:"):
            entries.append(("CONDA_PREFIX", self.prefix))
        else:
            entries.append(("VIRTUAL_ENV", self.prefix))
        return tuple(entries)


_BARE_PYTHON = re.compile(r"^python(?:3(?:\.\d+)?)?$")


def with_interpreter(words: Sequence[str], env: PythonEnv | None) -> list[str]:
    """The command with a bare `python`/`python3`/`python3.X` replaced by the project's interpreter.

    A command that names another program or interpreter (a path, `torchrun`, `accelerate`) is kept.
    """
    result = list(words)
    if env is not None and env.python and result and _BARE_PYTHON.fullmatch(result[0]):
        result[0] = env.python
    return result


# -- entry points ---------------------------------------------------------------------------------

ENTRY_MAIN = "main"  # @hydra.main: a command line with overrides, -m / --multirun
ENTRY_COMPOSE = "compose"  # initialize(...) + compose(...): the script composes itself


@dataclass(frozen=True)
class EntryPoint:
    """A Hydra entry point found by reading a project's Python file (never importing it)."""

    script: str  # relative to the project root, posix
    kind: str
    line: int
    config_dir: str | None = None  # relative to the project root (posix), or absolute when outside
    config_module: str | None = None  # config_path="pkg://a.b" or initialize_config_module
    config_name: str | None = None
    version_base: str | None = None
    has_version_base: bool = False  # version_base given (even None): Hydra's 1.2+ semantics apply

    @property
    def supports_multirun(self) -> bool:
        return self.kind == ENTRY_MAIN

    def command(self) -> str:
        return f"python {shlex.quote(self.script)}"

    def label(self) -> str:
        where = self.config_module or self.config_dir or "no config folder"
        name = f"{self.config_name}.yaml" if self.config_name else "(no config_name)"
        return f"{self.script}:{self.line} · {where} · {name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "kind": self.kind,
            "line": self.line,
            "config_dir": self.config_dir,
            "config_module": self.config_module,
            "config_name": self.config_name,
            "version_base": self.version_base if self.has_version_base else "(not given)",
        }


def choose_entry_point(
    entries: Sequence[EntryPoint], chosen_script: str | None, command: str
) -> EntryPoint | None:
    """The entry point a project uses: the user's choice, else the one its command runs, else the
    first (train scripts first)."""
    if not entries:
        return None
    if chosen_script:
        for entry in entries:
            if entry.script == chosen_script:
                return entry
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    for entry in entries:
        if any(w == entry.script or w.endswith("/" + entry.script) for w in words):
            return entry
    return sorted(entries, key=lambda e: (e.kind != ENTRY_MAIN, "train" not in e.script, e.script))[0]


# -- the layout Hydra reports ---------------------------------------------------------------------


@dataclass(frozen=True)
class HydraChoice:
    option: str  # e.g. "example", "musicgen/musicgen_base_32khz"
    override: str  # exactly what the picker adds, e.g. "experiment=example", "+extra=a", "db@backup=pg"


@dataclass(frozen=True)
class HydraGroup:
    """One picker: a group default of the primary's defaults tree, or a top-level group outside it."""

    name: str  # the group's path, e.g. "solver", "model/net"
    key: str  # Hydra's override key, e.g. "data@backup"
    package: str | None
    default: str | None  # the option the defaults list picks; None: null, optional-missing, or not in it
    in_defaults: bool
    optional: bool
    options: tuple[str, ...]
    choices: tuple[HydraChoice, ...]  # the options Hydra accepts as the only change
    refused: tuple[tuple[str, str, str], ...] = ()  # (option, override, Hydra's message)

    def choice(self, option: str) -> HydraChoice | None:
        return next((c for c in self.choices if c.option == option), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "package": self.package,
            "default": self.default,
            "in_defaults": self.in_defaults,
            "optional": self.optional,
            "options": list(self.options),
            "choices": [{"option": c.option, "override": c.override} for c in self.choices],
            "refused": [{"option": o, "override": v, "error": e} for o, v, e in self.refused],
        }


@dataclass(frozen=True)
class HydraLayout:
    """A project's Hydra config as its own Hydra sees it, and what is needed to ask it again."""

    root: str  # the project's work tree
    config_dir: str | None  # absolute
    primary: str | None  # config name without .yaml
    primaries: tuple[str, ...]
    groups: tuple[HydraGroup, ...]
    env: PythonEnv
    hydra_version: str = ""
    entry: EntryPoint | None = None
    entry_points: tuple[EntryPoint, ...] = ()
    config_module: str | None = None
    version_base: str | None = None
    has_version_base: bool = False
    structured_modules: tuple[str, ...] = ()  # absolute paths of files registering structured configs
    sweeper: str | None = None  # hydra.sweeper._target_
    warnings: tuple[str, ...] = ()
    source: str = ""  # how the config was found: "entry point", "convention", "settings"

    @property
    def supports_multirun(self) -> bool:
        return self.entry is None or self.entry.supports_multirun

    def group(self, key: str) -> HydraGroup | None:
        return next((g for g in self.groups if g.key == key), None)

    def options(self, name: str) -> tuple[str, ...]:
        """The options of the group named `name` (its first picker)."""
        return next((g.options for g in self.groups if g.name == name), ())

    def default_for(self, key: str) -> str | None:
        group = self.group(key)
        return group.default if group else None

    def probe_request(self, root: str | None = None) -> dict[str, Any]:
        """What the probe needs to ask this project's Hydra again, in `root` (default: the project)
        — e.g. a worktree of the exact commit a launch runs, with every path mapped into it."""
        root = root or self.root
        request: dict[str, Any] = {
            "root": root,
            "config_dir": _relocate(self.config_dir, self.root, root),
            "config_module": self.config_module,
            "config_name": self.primary,
            "structured_modules": [_relocate(p, self.root, root) for p in self.structured_modules],
        }
        if self.has_version_base:
            request["version_base"] = self.version_base
        return request


def _relocate(path: str | None, old_root: str, new_root: str) -> str | None:
    if path is None or old_root == new_root:
        return path
    try:
        rel = os.path.relpath(path, old_root)
    except ValueError:
        return path
    return path if rel.startswith("..") else os.path.join(new_root, rel)


def groups_from_probe(answer: Mapping[str, Any]) -> tuple[HydraGroup, ...]:
    """The pickers of a probe's `layout` answer (groups with no option are left out)."""
    groups: list[HydraGroup] = []
    for raw in answer.get("groups", []):
        options = tuple(str(o) for o in raw.get("options", []))
        if not options:
            continue
        groups.append(
            HydraGroup(
                name=str(raw["name"]),
                key=str(raw["key"]),
                package=raw.get("package"),
                default=raw.get("default"),
                in_defaults=bool(raw.get("in_defaults")),
                optional=bool(raw.get("optional")),
                options=options,
                choices=tuple(
                    HydraChoice(str(c["option"]), str(c["override"])) for c in raw.get("choices", [])
                ),
                refused=tuple(
                    (str(r["option"]), str(r["override"]), str(r["error"])) for r in raw.get("refused", [])
                ),
            )
        )
    return tuple(groups)


# -- the form's overrides ---------------------------------------------------------------------------


def group_overrides(layout: HydraLayout | None, selected: Mapping[str, str]) -> list[str]:
    """The override of each picker whose choice is not its default, in the layout's order.

    `selected` maps a picker's key to an option; "" or the default adds nothing.
    """
    if layout is None:
        return []
    result: list[str] = []
    for group in layout.groups:
        option = selected.get(group.key)
        if not option or option == group.default:
            continue
        choice = group.choice(option)
        if choice is not None:
            result.append(choice.override)
    return result


def split_prefill(layout: HydraLayout | None, overrides: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """A past launch's overrides as (picker choices, free lines), never rewritten.

    An override becomes a picker choice only when it is exactly the string that choice adds; anything
    else (a value override, an override the pickers would write differently) stays a free line as it
    was, so the overrides rebuilt from the form are the ones that ran.
    """
    by_override: dict[str, tuple[str, str]] = {}
    for group in layout.groups if layout else ():
        for choice in group.choices:
            by_override.setdefault(choice.override, (group.key, choice.option))
    chosen: dict[str, str] = {}
    free: list[str] = []
    for override in overrides:
        hit = by_override.get(override)
        if hit is not None and hit[0] not in chosen:
            chosen[hit[0]] = hit[1]
        else:
            free.append(override)
    return chosen, free


def overrides_text(overrides: Sequence[str]) -> str:
    """Overrides as one line, each quoted as a shell would need (argument boundaries stay visible)."""
    return shlex.join(overrides)


@dataclass(frozen=True)
class SweepMember:
    overrides: tuple[str, ...]
    composed_config: str


@dataclass(frozen=True)
class ComposedPlan:
    """What the probe's `plan` says a launch runs: one config, a sweep of members, or one --multirun
    job driven by an optimizing sweeper (optuna, ...)."""

    members: tuple[SweepMember, ...]
    sweeper: str | None = None
    mode: str | None = None  # None: a single run; "members": one job each; "multirun": one -m job
    warnings: tuple[str, ...] = field(default=())

    @property
    def is_sweep(self) -> bool:
        return self.mode is not None
