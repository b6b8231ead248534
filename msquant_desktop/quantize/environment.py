"""Which Python runs the quantization worker, found without importing llmcompressor in this process.

The app's own interpreter when llmcompressor and torch are installed there (checked with
`importlib.util.find_spec`, which locates a package without running it); otherwise the Python chosen in
Settings (checked in a short child process).  Blocking: callers run it off the GUI thread.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.runtime import self_command

INSTALL_COMMAND = 'python -m pip install "llmcompressor>=0.14,<0.15" "torch==2.13.0"'
"""torch is pinned to the CPU build this machine kind serves, so pip does not pull CUDA wheels."""

_PROBE = (
    "import importlib.util as u, sys; "
    "sys.exit(0 if u.find_spec('llmcompressor') and u.find_spec('torch') else 3)"
)
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)

WORKER_MODULES = {
    "quantize": "msquant_desktop.quantize.worker_quantize",
    "demo-model": "msquant_desktop.quantize.worker_demo",
    "verify": "msquant_desktop.quantize.worker_verify",
    "evaluate": "msquant_desktop.quantize.worker_evaluate",
}


@dataclass(frozen=True)
class WorkerEnvironment:
    """Where workers run, or why they cannot."""

    python: str | None
    own_interpreter: bool
    message: str

    @property
    def available(self) -> bool:
        return self.python is not None

    @property
    def install_command(self) -> str:
        return INSTALL_COMMAND.replace("python", self.python or sys.executable, 1)

    def command(self, subcommand: str, *args: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """(argv, extra environment) that runs a worker subcommand with this Python."""
        if self.own_interpreter or self.python is None:
            return tuple(self_command(subcommand, *args)), ()
        module = WORKER_MODULES[subcommand]
        argv: tuple[str, ...]
        if subcommand == "demo-model":
            argv = (self.python, "-c", _DEMO_MAIN, *args)
        else:
            argv = (self.python, "-m", module, *args)
        # The other Python finds our (pure-Python, Qt-free) worker modules through PYTHONPATH.
        return argv, (("PYTHONPATH", PACKAGE_PARENT),)


# worker_demo has no argparse of its own (the CLI owns it); this runs the same parser.
_DEMO_MAIN = (
    "import argparse, sys; from msquant_desktop.quantize.args import add_demo_arguments; "
    "from msquant_desktop.quantize.worker_demo import main; p = argparse.ArgumentParser(); "
    "add_demo_arguments(p); a = p.parse_args(); sys.exit(main(a.out, a.size))"
)


def own_interpreter_has_llmcompressor() -> bool:
    return (
        importlib.util.find_spec("llmcompressor") is not None
        and importlib.util.find_spec("torch") is not None
    )


def probe_python(python: str, timeout: float = 30.0) -> str | None:
    """None when `python` can run the worker, else why not."""
    if not Path(python).expanduser().exists():
        return f"the worker Python {python} does not exist"
    try:
        proc = subprocess.run(
            [str(Path(python).expanduser()), "-c", _PROBE], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the worker Python {python} cannot be run: {exc}"
    if proc.returncode == 3:
        return f"llmcompressor (or torch) is not installed for {python}"
    if proc.returncode != 0:
        return f"the worker Python {python} failed: {proc.stderr.strip()[-300:]}"
    return None


def detect_worker_environment(settings_python: str = "", consider_own: bool = True) -> WorkerEnvironment:
    """The app's interpreter when it has llmcompressor, else Settings' worker Python, else none.

    `consider_own=False` skips the app's interpreter (to describe what Settings' Python alone gives).
    """
    if consider_own and own_interpreter_has_llmcompressor():
        return WorkerEnvironment(
            sys.executable, True, f"Workers run with this app's Python ({sys.executable})."
        )
    if settings_python:
        problem = probe_python(settings_python)
        if problem is None:
            return WorkerEnvironment(
                str(Path(settings_python).expanduser()), False, f"Workers run with {settings_python}."
            )
        return WorkerEnvironment(
            None,
            False,
            f"No Python with llmcompressor: {problem}. Install it there with: "
            + INSTALL_COMMAND.replace("python", settings_python, 1),
        )
    if not consider_own:
        return WorkerEnvironment(
            None, False, f"No worker Python is set in Settings. Install llmcompressor with: {INSTALL_COMMAND}"
        )
    return WorkerEnvironment(
        None,
        False,
        "No Python with llmcompressor: it is not installed for this app's Python and no worker Python is "
        f"set in Settings. Install it with: {INSTALL_COMMAND.replace('python', sys.executable, 1)} "
        "(or choose a Python that has it in Settings → Worker Python).",
    )
