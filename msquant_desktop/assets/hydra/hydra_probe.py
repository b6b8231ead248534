"""Ask a project's own Hydra about its configs: run by the project's Python, never by the app's.

Self-contained on purpose: it needs only the project's hydra-core (and what hydra-core itself needs),
none of MSQuant Desktop's modules, so the project's Hydra version, its plugins (hydra-colorlog, the
optuna sweeper, ...) and its structured configs are the ones that answer.  It runs from Python 3.7 up
and from hydra-core 1.1 up.

Protocol: one JSON request on stdin, one JSON answer on stdout, nothing else on stdout (whatever
Hydra or the project's modules print goes to stderr).  Every answer has "ok"; a refusal has "error"
with Hydra's own message.

Requests (all with "config_dir" (absolute) or "config_module", "config_name", optionally
"version_base" (given only when the entry point gives it), "root" (the tree the run starts in) and
"structured_modules" (files that register structured configs in Hydra's ConfigStore)):
  {"op": "layout", "validate": true}  groups, options and picker choices from Hydra's defaults tree
  {"op": "compose", "overrides": [...], "hydra": bool, "resolve": bool}
  {"op": "compose_each", "override_sets": [[...], ...]}  one composition per set: ok or Hydra's error
  {"op": "plan", "overrides": [...], "multirun": bool}  what a launch runs: one config, or the members
                                                        of a sweep as Hydra's basic sweeper splits it
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import sys
import traceback
from contextlib import contextmanager

PROTOCOL = 1


def _answer_fd() -> io.TextIOWrapper:
    """Keep the real stdout for the answer; everything else printed goes to stderr."""
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.TextIOWrapper(os.fdopen(saved, "wb"), encoding="utf-8")


def _hydra_version():
    import hydra

    return str(hydra.__version__)


def _at_least(version, major, minor):
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts) >= (major, minor)


def _import_structured(paths, warnings):
    """Import the modules that register structured configs (found by reading the project's files)."""
    for index, path in enumerate(paths or []):
        try:
            spec = importlib.util.spec_from_file_location(f"_msquant_structured_{index}", path)
            if spec is None or spec.loader is None:
                raise ImportError("cannot load " + path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # a project's module may raise anything, even SystemExit
            warnings.append(f"could not import {path} for its structured configs: {exc}")


@contextmanager
def _hydra(req):
    """Initialize Hydra the way the entry point does (config dir or module, version_base if given)."""
    from hydra import initialize, initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    kwargs = {}
    if "version_base" in req and _at_least(_hydra_version(), 1, 2):
        kwargs["version_base"] = req["version_base"]
    GlobalHydra.instance().clear()
    try:
        if req.get("config_module"):
            ctx = initialize_config_module(config_module=req["config_module"], **kwargs)
        elif req.get("config_dir"):
            ctx = initialize_config_dir(config_dir=req["config_dir"], **kwargs)
        else:
            ctx = initialize(config_path=None, **kwargs)
        with ctx:
            yield GlobalHydra.instance().hydra
    finally:
        GlobalHydra.instance().clear()


def _strip_yaml(name):
    return name[: -len(".yaml")] if isinstance(name, str) and name.endswith(".yaml") else name


def _compose(hydra_app, config_name, overrides, run_mode=None, hydra_section=False):
    from hydra.types import RunMode
    from omegaconf import open_dict

    cfg = hydra_app.compose_config(
        config_name=config_name,
        overrides=list(overrides),
        run_mode=run_mode or RunMode.RUN,
        from_shell=False,
        with_log_configuration=False,
    )
    if hydra_section:
        return cfg
    if "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def _error_text(exc):
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause).strip()
    return text or type(exc).__name__


# -- layout -----------------------------------------------------------------------------------------
def _walk_tree(node, found):
    """Every GroupDefault in a defaults (sub)tree, in order."""
    from hydra._internal.defaults_list import DefaultsTreeNode
    from hydra.core.default_element import GroupDefault

    if isinstance(node, DefaultsTreeNode):
        if isinstance(node.node, GroupDefault):
            found.append(node.node)
        for child in node.children or []:
            _walk_tree(child, found)
    elif isinstance(node, GroupDefault):
        found.append(node)


def _primary_subtree(tree, config_name):
    """The primary config's node in Hydra's defaults tree (Hydra's own config is a sibling)."""
    from hydra._internal.defaults_list import DefaultsTreeNode
    from hydra.core.default_element import ConfigDefault

    for child in tree.children or []:
        if isinstance(child, DefaultsTreeNode) and isinstance(child.node, ConfigDefault):
            if getattr(child.node, "primary", False) or child.node.path == config_name:
                return child
    return None


def _is_hydra_group(path):
    return path == "hydra" or path.startswith("hydra/")


def _all_configs(repo, group=""):
    """(group, name) of every config Hydra can see, Hydra's own tree left out."""
    from hydra.core.object_type import ObjectType

    result = []
    for name in repo.get_group_options(group, ObjectType.CONFIG):
        result.append((group, name))
    for sub in repo.get_group_options(group, ObjectType.GROUP):
        path = sub if not group else group + "/" + sub
        if not _is_hydra_group(path):
            result.extend(_all_configs(repo, path))
    return result


def _groups_used_by_configs(repo, configs, warnings):
    """Group paths that some config's defaults list selects from: such a folder is a group of its own,
    never a nested option of its parent folder (e.g. solver/musicgen/evaluation in audiocraft)."""
    from hydra.core.default_element import GroupDefault

    used = set()
    for group, name in configs:
        path = name if not group else group + "/" + name
        try:
            loaded = repo.load_config(config_path=path)
        except Exception as exc:
            warnings.append(f"could not read {path}: {_error_text(exc)}")
            continue
        for default in (loaded.defaults_list if loaded is not None else None) or []:
            if not isinstance(default, GroupDefault) or not default.group:
                continue
            target = default.group
            if target.startswith("/"):
                used.add(target[1:])
                continue
            used.add(group + "/" + target if group else target)
            top = group.split("/", 1)[0]
            if top:
                used.add(top + "/" + target)
    return used


def _options(repo, group, used):
    """The options of a picker: the group's configs, plus configs in sub-folders that are not groups
    of their own (`solver=musicgen/musicgen_base_32khz`)."""
    from hydra.core.object_type import ObjectType

    options = list(repo.get_group_options(group, ObjectType.CONFIG))
    for sub in repo.get_group_options(group, ObjectType.GROUP):
        path = group + "/" + sub
        if path in used or _is_hydra_group(path):
            continue
        options.extend(sub + "/" + option for option in _options(repo, path, used))
    return sorted(set(options))


def _value_text(value):
    if isinstance(value, list):
        return "[" + ",".join(_strip_yaml(v) for v in value) + "]"
    return _strip_yaml(value)


def layout(req):
    from hydra.core.object_type import ObjectType
    from hydra.types import RunMode

    warnings = []
    _import_structured(req.get("structured_modules"), warnings)
    config_name = req.get("config_name")
    with _hydra(req) as hydra_app:
        loader = hydra_app.config_loader
        primaries = []
        for source in loader.get_sources():
            if source.provider == "main":
                primaries = sorted(source.list("", ObjectType.CONFIG))
        if config_name is None:
            for preferred in ("config", "train", "main"):
                if preferred in primaries:
                    config_name = preferred
                    break
            else:
                config_name = primaries[0] if primaries else None
        defaults = loader.compute_defaults_list(config_name, [], RunMode.RUN)
        # The repository with the primary's hydra.searchpath applied: its options appear too.
        from hydra._internal.config_repository import CachingConfigRepository

        repo = CachingConfigRepository(loader.repository)
        loader._process_config_searchpath(config_name, [], repo)
        configs = _all_configs(repo)
        used = _groups_used_by_configs(repo, configs, warnings)
        primary = _primary_subtree(defaults.defaults_tree, config_name)
        in_tree = []
        if primary is not None:
            _walk_tree(primary, in_tree)
        groups = []
        seen_keys = set()
        for default in in_tree:
            path = default.get_group_path()
            if _is_hydra_group(path):
                continue
            key = default.get_override_key()
            if key in seen_keys:
                continue
            seen_keys.add(key)
            is_list = isinstance(default.value, list)
            value = None if default.value is None or default.is_deleted() else _value_text(default.value)
            groups.append(
                {
                    "name": path,
                    "key": key,
                    "package": default.get_final_package() if value is not None else default.package,
                    "default": value,
                    "in_defaults": True,
                    "optional": bool(default.optional),
                    "multiple": is_list,
                    "options": _options(repo, path, used),
                }
            )
        tree_paths = set(g["name"] for g in groups)
        for top in sorted(repo.get_group_options("", ObjectType.GROUP)):
            if _is_hydra_group(top) or top in tree_paths:
                continue
            options = _options(repo, top, used)
            if options:
                groups.append(
                    {
                        "name": top,
                        "key": top,
                        "package": None,
                        "default": None,
                        "in_defaults": False,
                        "optional": False,
                        "multiple": False,
                        "options": options,
                    }
                )
        for group in groups:
            group["choices"], group["refused"] = _choices(
                repo, config_name, group, bool(req.get("validate", True))
            )
        sweeper = None
        try:
            full = _compose(hydra_app, config_name, [], hydra_section=True)
            sweeper = _sweeper_target(full)
        except Exception as exc:
            warnings.append("the primary config does not compose: " + _error_text(exc))
        defaults_rows = [
            {"config_path": d.config_path, "package": d.package, "parent": d.parent, "is_self": d.is_self}
            for d in defaults.defaults
        ]
    for g in groups:
        del g["multiple"]
    return {
        "ok": True,
        "config_name": config_name,
        "primaries": primaries,
        "groups": groups,
        "defaults": defaults_rows,
        "sweeper": sweeper,
        "warnings": warnings,
    }


def _choice_override(group, option):
    """What a picker adds for `option`: Hydra's own override key; `+` only for a group that is not in
    the defaults list (a null default is in it: `experiment=example`, never `+experiment=example`)."""
    value = "[" + option + "]" if group.get("multiple") else option
    prefix = "" if group["in_defaults"] else "+"
    return prefix + group["key"] + "=" + value


def _choices(repo, config_name, group, validate):
    """Every option as a picker choice, each checked by building Hydra's defaults list with it (what
    refuses a wrong `+`, a missing package or a clash); the repository caches loaded configs, so a
    check costs milliseconds, not a full composition."""
    from hydra._internal.defaults_list import create_defaults_list
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    choices, refused = [], []
    for option in group["options"]:
        override = _choice_override(group, option)
        if validate and option != group["default"]:
            try:
                create_defaults_list(
                    repo=repo,
                    config_name=config_name,
                    overrides_list=parser.parse_overrides(overrides=[override]),
                    prepend_hydra=True,
                    skip_missing=False,
                )
            except Exception as exc:
                refused.append({"option": option, "override": override, "error": _error_text(exc)})
                continue
        choices.append({"option": option, "override": override})
    return choices, refused


def _sweeper_target(full_cfg):
    try:
        target = full_cfg.hydra.sweeper.get("_target_")
    except Exception:
        return None
    return str(target) if target else None


# -- compose ----------------------------------------------------------------------------------------
def _to_yaml(cfg, resolve=False):
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg, resolve=resolve)


def compose(req):
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    warnings = []
    _import_structured(req.get("structured_modules"), warnings)
    overrides = list(req.get("overrides") or [])
    with _hydra(req) as hydra_app:
        try:
            full = _compose(hydra_app, req.get("config_name"), overrides, hydra_section=True)
        except Exception as exc:
            return {"ok": False, "error": _error_text(exc), "warnings": warnings}
        answer = {"ok": True, "warnings": warnings}
        job = copy.deepcopy(full)
        if "hydra" in job:
            with open_dict(job):
                del job["hydra"]
        answer["yaml"] = _to_yaml(job)
        if req.get("hydra") and "hydra" in full:
            answer["hydra_yaml"] = _to_yaml(OmegaConf.create({"hydra": full.hydra}))
        if req.get("resolve"):
            try:
                HydraConfig.instance().set_config(full)
                answer["resolved_yaml"] = _to_yaml(job, resolve=True)
            except Exception as exc:
                answer["resolve_error"] = _error_text(exc)
    return answer


def compose_each(req):
    """Compose once per set of overrides (a check of many choices in one Hydra start)."""
    warnings = []
    _import_structured(req.get("structured_modules"), warnings)
    results = []
    with _hydra(req) as hydra_app:
        for overrides in req.get("override_sets") or []:
            try:
                _compose(hydra_app, req.get("config_name"), overrides)
            except Exception as exc:
                results.append({"ok": False, "error": _error_text(exc)})
            else:
                results.append({"ok": True})
    return {"ok": True, "results": results, "warnings": warnings}


# -- plan: one run, or the members of a sweep ---------------------------------------------------------
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _member_overrides(parsed):
    """The cartesian product of the sweep overrides, in the order Hydra's basic sweeper runs them;
    an override that is not a sweep stays exactly as the user wrote it."""
    import itertools

    # Like BasicSweeper.split_arguments: one entry per key, in the order each key first appears, the
    # last value given for a key winning (a command-line `lr=0.5` replaces the config's `lr: 0.1,0.2`).
    by_key = {}
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ValueError(
                    f"{override.input_line!r} is a range sweep (interval): only an optimizing sweeper "
                    "can run it"
                )
            by_key[key] = [key + "=" + value for value in override.sweep_string_iterator()]
        else:
            by_key[key] = [override.input_line]
    return [list(members) for members in itertools.product(*by_key.values())]


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def plan(req):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    warnings = []
    _import_structured(req.get("structured_modules"), warnings)
    overrides = list(req.get("overrides") or [])
    config_name = req.get("config_name")
    with _hydra(req) as hydra_app:
        try:
            parser = OverridesParser.create()
            parsed = parser.parse_overrides(overrides=overrides)
        except Exception as exc:
            return {"ok": False, "error": _error_text(exc)}
        sweep_on_line = any(o.is_sweep_override() for o in parsed)
        multirun = bool(req.get("multirun")) or sweep_on_line
        if not multirun:
            try:
                cfg = _compose(hydra_app, config_name, overrides)
            except Exception as exc:
                return {"ok": False, "error": _error_text(exc)}
            return {
                "ok": True,
                "sweep": None,
                "members": [{"overrides": overrides, "yaml": _to_yaml(cfg)}],
                "warnings": warnings,
            }
        try:
            base = _compose(hydra_app, config_name, overrides, RunMode.MULTIRUN, hydra_section=True)
        except Exception as exc:
            return {"ok": False, "error": _error_text(exc)}
        sweeper = _sweeper_target(base) or BASIC_SWEEPER
        if sweeper != BASIC_SWEEPER and not _importable(sweeper.rsplit(".", 1)[0]):
            return {
                "ok": False,
                "error": f"the sweeper {sweeper} (hydra.sweeper._target_) is not installed in "
                f"{sys.executable}: install its Hydra plugin there, or give the values as a grid "
                "(a=1,2) for Hydra's basic sweeper",
            }
        if sweeper != BASIC_SWEEPER:
            # An optimizing sweeper (optuna, ax, nevergrad) picks each trial from the previous ones:
            # the members cannot be known in advance, so the sweep is one --multirun job.
            job = copy.deepcopy(base)
            from omegaconf import open_dict

            with open_dict(job):
                del job["hydra"]
            return {
                "ok": True,
                "sweep": {"sweeper": sweeper, "mode": "multirun"},
                "members": [{"overrides": overrides, "yaml": _to_yaml(job)}],
                "warnings": warnings,
            }
        params = []
        try:
            configured = base.hydra.sweeper.get("params") or {}
            params = [f"{k}={v}" for k, v in configured.items()]
        except Exception:
            params = []
        try:
            everything = parser.parse_overrides(overrides=params + overrides) if params else parsed
            members = _member_overrides(everything)
        except Exception as exc:
            return {"ok": False, "error": _error_text(exc)}
        result = []
        for member in members:
            try:
                cfg = _compose(hydra_app, config_name, member)
            except Exception as exc:
                return {"ok": False, "error": f"sweep member {' '.join(member)}: {_error_text(exc)}"}
            result.append({"overrides": member, "yaml": _to_yaml(cfg)})
    return {
        "ok": True,
        "sweep": {"sweeper": sweeper, "mode": "members", "params": params},
        "members": result,
        "warnings": warnings,
    }


OPS = {"layout": layout, "compose": compose, "compose_each": compose_each, "plan": plan}


def main():
    out = _answer_fd()
    try:
        req = json.loads(sys.stdin.read() or "{}")
        root = req.get("root")
        if root:
            os.chdir(root)
            sys.path.insert(0, root)
        try:
            version = _hydra_version()
        except ImportError as exc:
            answer = {"ok": False, "error": f"hydra-core is not installed in {sys.executable} ({exc})"}
        else:
            op = OPS.get(req.get("op"))
            if op is None:
                answer = {"ok": False, "error": f"unknown request {req.get('op')!r}"}
            else:
                answer = op(req)
            answer["hydra_version"] = version
    except BaseException as exc:  # the answer must always come back as JSON
        traceback.print_exc()
        answer = {"ok": False, "error": _error_text(exc)}
    answer["python"] = sys.executable
    answer["protocol"] = PROTOCOL
    out.write(json.dumps(answer))
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
