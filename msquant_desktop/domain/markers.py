"""Names shared by the job supervisor, the workers and the GPU doctor.  Standard library only.

Every process of a local job carries these variables in its environment (set by our supervisor), so a
process can be attributed to its job — or found as an orphan — by reading /proc/PID/environ.
"""

from __future__ import annotations

JOB_ID_ENV = "MSQUANT_JOB_ID"
"""The job's id in the store."""

RUN_DIR_ENV = "MSQUANT_RUN_DIR"
"""The job's run folder; unique per job, so it identifies the job across stores."""

STORE_ENV = "MSQUANT_STORE"
"""Path of the SQLite store that owns the job."""

EVENT_PREFIX = "@@MSQUANT-EVENT@@ "
"""A stdout line starting with this carries one JSON object: a machine-readable event of the job.

Well-known event shapes (any job may emit them; workers add their own fields):
    {"type": "stage",    "stage": "Calibrating"}
    {"type": "progress", "stage": "Calibrating", "done": 3, "total": 9, "fraction": 0.33, "eta_s": 12.5}
    {"type": "warning",  "message": "..."}
    {"type": "error",    "message": "...", "hint": "..."}
    {"type": "result",   ...}  (kind-specific final result, e.g. a quantization's output and sizes)
"""

RUN_DIR_PLACEHOLDER = "{run_dir}"
"""In a JobSpec's argv or cwd, replaced by the job's run folder when the job starts."""
