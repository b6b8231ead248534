"""The workers as one self-contained zipapp, for a machine that has llmcompressor but not this app.

A cluster job runs `REMOTE_PYTHON msquant-worker.pyz quantize|evaluate ARGS...`: the archive holds
the worker modules and exactly the modules of this package they import (found by reading their
`import` statements, so a new import travels without a list to keep up to date) and a `__main__`
that dispatches to them.  Standard library only.

The archive is written to `<dest>/msquant-worker-<sha256 prefix>.pyz` (content-addressed: the same
sources give the same file, which is reused), with fixed timestamps so it is reproducible.
"""

from __future__ import annotations

import ast
import hashlib
import io
import zipfile
from pathlib import Path

PACKAGE = "msquant_desktop"
ENTRY_MODULES = (
    "msquant_desktop.quantize.worker_quantize",
    "msquant_desktop.quantize.worker_evaluate",
)
REMOTE_NAME = "msquant-worker.pyz"
"""The archive's name in the job's folder on the cluster."""
COMMANDS = ("quantize", "evaluate")

_MAIN = '''"""MSQuant worker bundle: `python msquant-worker.pyz quantize|evaluate ARGS...`."""
import sys


def _main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("quantize", "evaluate"):
        print("usage: msquant-worker.pyz quantize|evaluate ARGS...", file=sys.stderr)
        return 2
    command, argv = sys.argv[1], sys.argv[2:]
    if command == "quantize":
        from msquant_desktop.quantize.worker_quantize import main
    else:
        from msquant_desktop.quantize.worker_evaluate import main
    return int(main(argv))


sys.exit(_main())
'''
_EPOCH = (2020, 1, 1, 0, 0, 0)


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _module_file(root: Path, module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:
        return root / "__init__.py"
    rel = Path(*parts)
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _own_imports(path: Path, module: str) -> set[str]:
    """The modules of this package that `path` imports at any depth of its code (lazy ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def bundled_modules(root: Path | None = None) -> dict[str, Path]:
    """{module name: source file} of the entry modules and everything of ours they import, with
    every package's `__init__` on the way."""
    root = root or _package_root()
    todo = list(ENTRY_MODULES)
    files: dict[str, Path] = {}
    while todo:
        module = todo.pop()
        if module in files:
            continue
        path = _module_file(root, module)
        if path is None:
            continue  # a name imported from a module, not a module
        files[module] = path
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_own_imports(path, module))
    return files


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def build_bytes(root: Path | None = None) -> bytes:
    """The zipapp's bytes (reproducible: sorted entries, fixed timestamps)."""
    root = root or _package_root()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_entry("__main__.py"), _MAIN)
        for _module, path in sorted(bundled_modules(root).items()):
            arcname = path.relative_to(root.parent).as_posix()
            archive.writestr(_entry(arcname), path.read_bytes())
    return buffer.getvalue()


def write_bundle(dest: Path) -> Path:
    """The zipapp in `dest` (created if needed), reusing a file with the same content."""
    data = build_bytes()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"msquant-worker-{hashlib.sha256(data).hexdigest()[:12]}.pyz"
    if not path.is_file() or path.read_bytes() != data:
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path
