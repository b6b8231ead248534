"""Find a project's Hydra entry points by reading its Python files (ast), never importing them.

Recognised: `@hydra.main(config_path=..., config_name=..., version_base=...)` (also `from hydra import
main`, positional arguments, `pkg://` config paths; and Dora's `@hydra_main(...)`, a wrapper of
hydra.main with the same arguments, as audiocraft's train.py uses it), and the compose API: `initialize(config_path=...)`,
`initialize_config_dir(config_dir=...)`, `initialize_config_module(config_module=...)` with the
`compose(config_name=...)` of the same file.  A relative config path is relative to the file that
names it, as Hydra resolves it.  Files that store structured configs in Hydra's ConfigStore
(`ConfigStore.instance().store(...)`) are listed too: the probe imports them so those configs exist.
"""

from __future__ import annotations

import ast
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.domain.project_configs import ENTRY_COMPOSE, ENTRY_MAIN, EntryPoint

log = logging.getLogger(__name__)

SKIP_DIRS = frozenset(
    {
        "venv",
        "env",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "site-packages",
        "outputs",
        "multirun",
        "logs",
        "wandb",
        "lightning_logs",
    }
)
MAX_FILES = 5000
MAX_FILE_BYTES = 2 * 1024 * 1024
_UNSET = object()


@dataclass(frozen=True)
class ProjectScan:
    entry_points: tuple[EntryPoint, ...]
    structured_modules: tuple[str, ...]  # absolute paths


def project_files(root: Path, suffixes: tuple[str, ...] = (".py",)) -> Iterator[Path]:
    """The project's own files with these suffixes: hidden folders, environments and run outputs
    are skipped, and at most MAX_FILES are listed."""
    count = 0
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d not in SKIP_DIRS and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            if name.endswith(suffixes):
                count += 1
                if count > MAX_FILES:
                    log.info("stopped reading %s after %d files", root, MAX_FILES)
                    return
                yield here / name


def _constant(node: ast.AST | None) -> object:
    """A literal str/None argument, else _UNSET (an expression we cannot evaluate without running)."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return node.value
    return _UNSET


class _Names:
    """The local names that mean `hydra`, `hydra.main` and the compose API in one file."""

    def __init__(self, tree: ast.Module) -> None:
        self.modules: set[str] = set()
        self.dora_modules: set[str] = set()
        self.funcs: dict[str, str] = {}  # local name -> hydra function
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "hydra":
                        self.modules.add(alias.asname or "hydra")
                    elif alias.name == "dora":
                        self.dora_modules.add(alias.asname or "dora")
            elif isinstance(node, ast.ImportFrom) and node.module == "dora":
                for alias in node.names:
                    if alias.name == "hydra_main":  # dora.hydra_main wraps hydra.main: same arguments
                        self.funcs[alias.asname or alias.name] = "main"
            elif isinstance(node, ast.ImportFrom) and node.module in (
                "hydra",
                "hydra.main",
                "hydra.initialize",
            ):
                for alias in node.names:
                    self.funcs[alias.asname or alias.name] = alias.name

    def function_of(self, func: ast.AST) -> str | None:
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in self.modules:
                return func.attr
            if func.value.id in self.dora_modules and func.attr == "hydra_main":
                return "main"
        if isinstance(func, ast.Name):
            return self.funcs.get(func.id)
        return None


def _arguments(call: ast.Call, positional: tuple[str, ...]) -> dict[str, object]:
    args: dict[str, object] = {}
    for name, value in zip(positional, call.args, strict=False):
        args[name] = _constant(value)
    for keyword in call.keywords:
        if keyword.arg:
            args[keyword.arg] = _constant(keyword.value)
    return args


def _config_location(root: Path, script: Path, path: object) -> tuple[str | None, str | None]:
    """(config_dir relative to root or absolute, config_module) of a config_path argument."""
    if not isinstance(path, str):
        return None, None
    if path.startswith("pkg://"):
        return None, path[len("pkg://") :].replace("/", ".").strip(".")
    if path.startswith("file://"):
        path = path[len("file://") :]
    target = Path(os.path.normpath(script.parent / path)) if not os.path.isabs(path) else Path(path)
    try:
        return target.relative_to(root).as_posix() or ".", None
    except ValueError:
        return str(target), None


def _strip_yaml(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    return name[: -len(".yaml")] if name.endswith(".yaml") else name


def _entries_of(root: Path, path: Path, tree: ast.Module) -> tuple[list[EntryPoint], bool]:
    names = _Names(tree)
    script = path.relative_to(root).as_posix()
    entries: list[EntryPoint] = []
    compose_name: object = _UNSET
    initializers: list[tuple[ast.Call, str]] = []
    stores_structured = False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and names.function_of(decorator.func) == "main":
                    args = _arguments(decorator, ("config_path", "config_name", "version_base"))
                    config_path = args.get("config_path", _UNSET)
                    has_base = "version_base" in args
                    base = args.get("version_base")
                    if config_path is _UNSET and not (has_base and isinstance(base, str) and base >= "1.2"):
                        config_path = "."  # Hydra before 1.2 semantics: the script's own folder
                    config_dir, module = _config_location(root, path, config_path)
                    entries.append(
                        EntryPoint(
                            script=script,
                            kind=ENTRY_MAIN,
                            line=decorator.lineno,
                            config_dir=config_dir,
                            config_module=module,
                            config_name=_strip_yaml(args.get("config_name")),
                            version_base=base if isinstance(base, str) else None,
                            has_version_base=has_base and base is not _UNSET,
                        )
                    )
        elif isinstance(node, ast.Call):
            function = names.function_of(node.func)
            if function in ("initialize", "initialize_config_dir", "initialize_config_module"):
                initializers.append((node, function))
            elif function == "compose" and compose_name is _UNSET:
                compose_name = _arguments(node, ("config_name",)).get("config_name", _UNSET)
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "store":
                stores_structured = stores_structured or _calls_config_store(node.func.value)
    for call, function in initializers[:1]:
        if function == "initialize":
            args = _arguments(call, ("config_path", "job_name", "caller_stack_depth", "version_base"))
            config_dir, module = _config_location(root, path, args.get("config_path", _UNSET))
        elif function == "initialize_config_dir":
            args = _arguments(call, ("config_dir", "job_name", "version_base"))
            raw = args.get("config_dir")
            config_dir, module = (
                _config_location(root, root / "_", raw) if isinstance(raw, str) else (None, None)
            )
        else:
            args = _arguments(call, ("config_module", "job_name", "version_base"))
            raw = args.get("config_module")
            config_dir, module = None, raw if isinstance(raw, str) else None
        base = args.get("version_base", _UNSET)
        entries.append(
            EntryPoint(
                script=script,
                kind=ENTRY_COMPOSE,
                line=call.lineno,
                config_dir=config_dir,
                config_module=module,
                config_name=_strip_yaml(compose_name),
                version_base=base if isinstance(base, str) else None,
                has_version_base="version_base" in args and base is not _UNSET,
            )
        )
    return entries, stores_structured


def _calls_config_store(node: ast.AST) -> bool:
    """`cs.store(...)` where cs came from ConfigStore.instance(), or `ConfigStore.instance().store`."""
    text = ast.unparse(node)
    return "ConfigStore" in text or text in ("cs", "config_store", "store")


def scan_project(root: str | Path) -> ProjectScan:
    """Every Hydra entry point and structured-config module of the project, in file order."""
    root = Path(root)
    entries: list[EntryPoint] = []
    structured: list[str] = []
    for path in project_files(root):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            source = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "hydra" not in source and "ConfigStore" not in source:
            continue
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError):
            log.info("skipped %s: not parseable by this Python", path)
            continue
        found, stores = _entries_of(root, path, tree)
        entries.extend(found)
        if stores and "ConfigStore" in source:
            structured.append(str(path))
    return ProjectScan(tuple(entries), tuple(structured))
