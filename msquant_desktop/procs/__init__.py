"""The process toolkit (Qt-free, Linux): who a process is, its tree, our markers, and ending processes.

One definition for the whole program — the supervisor, the job engine, recovery, the CLI, GPU
attribution and the doctor all identify and stop processes through these modules:

- `identity`  start time (seconds after boot), state, parent, user, environment markers, "is it still
              the process we started" (pid + start time + run-folder marker).  Standard library only.
- `tree`      children and descendants (the kernel's children lists), processes carrying a run-folder
              marker.  Standard library only.
- `kill`      the one stop routine: TERM, grace, KILL, over a tree or a set of identified processes,
              with the refusals (this program, its ancestors, pid 0/1, other users, recycled pids).
- `scan`      every marked process of a user, commands, users, session managers (psutil).

`identity`, `tree` and `kill` are on the supervisor's start and stop path, so they import nothing but
the standard library (no psutil, dataclasses or pathlib at import time); this file imports nothing.
"""
