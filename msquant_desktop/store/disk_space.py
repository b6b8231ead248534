"""How much room the disk under a path has left: the one rule for calling a disk "full" in the
store's errors and in a job's reason."""

from __future__ import annotations

import os
from pathlib import Path

LOW_SPACE_BYTES = 1 << 20
"""Below this much free space (for us, not root's reserve) a disk is called full."""


def free_bytes(path: Path | str) -> int | None:
    """Bytes free for this user on the disk holding `path`; None when it cannot be asked."""
    try:
        found = os.statvfs(path)
    except (OSError, ValueError):
        return None
    return found.f_bavail * found.f_frsize


def is_nearly_full(path: Path | str) -> bool:
    free = free_bytes(path)
    return free is not None and free < LOW_SPACE_BYTES
