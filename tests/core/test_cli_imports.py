"""Building the command line must stay cheap: every subcommand (a quantization worker, `jobs run`,
the job supervisor) builds the whole parser before it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "paramiko",
    "cryptography",
    "pynvml",
    "numpy",
    "PySide6",
    "torch",
    "transformers",
    "llmcompressor",
    "hydra",
)


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "from msquant_desktop.app import build_parser\n"
        "build_parser().parse_args(['jobs', 'list'])\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
