"""The log file several processes write at once (every CLI process shares cli.log): no line lost,
none torn, across many rotations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.jobs.helpers import child_env

WRITER = """
import logging, sys
from pathlib import Path
from msquant_desktop.config.logsetup import SharedRotatingFileHandler
handler = SharedRotatingFileHandler(Path(sys.argv[1]), max_bytes=200_000, backup_count=9)
log = logging.getLogger("w")
log.addHandler(handler)
log.setLevel(logging.INFO)
sys.stdin.readline()  # all writers start together
for i in range(int(sys.argv[3])):
    log.info("writer %s line %06d %s", sys.argv[2], i, "x" * 60)
"""

WRITERS, LINES = 4, 3000


def test_concurrent_writers_across_rotations_lose_no_line(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "cli.log"
    log_file.parent.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(log_file), str(w), str(LINES)],
            env=child_env(),
            stdin=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    assert [p.wait(timeout=120) for p in procs] == [0] * WRITERS
    files = sorted(log_file.parent.glob("cli.log*"))
    lines = [line for f in files if not f.name.endswith(".lock") for line in f.read_text().splitlines()]
    expected = {f"writer {w} line {i:06d} {'x' * 60}" for w in range(WRITERS) for i in range(LINES)}
    assert len(lines) == WRITERS * LINES and set(lines) == expected
    assert (
        len([f for f in files if f.name[-1].isdigit()]) >= 3
    )  # it did rotate, several times (the standard handler kept ~80% here)
