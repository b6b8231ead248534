"""Which physical GPUs a job's GPU slots are, and the CUDA variables that say so.  Standard library only.

The queue hands out *slots* 0..N-1.  When the app (or `jobs run`) was itself started with
`CUDA_VISIBLE_DEVICES` (a shared node where a scheduler gave us GPU 3), the slots are the entries of
that list, in order: slot 0 is "3", never physical GPU 0.  Entries are NVML/`nvidia-smi` indices or
UUIDs ("GPU-…", "MIG-…"), as CUDA reads them: an entry that is neither ends the list (CUDA ignores it
and everything after it).  Jobs also get `CUDA_DEVICE_ORDER=PCI_BUS_ID`, so an index means the same
GPU to CUDA as to NVML and this app's GPU view (CUDA's default, FASTEST_FIRST, can differ).
"""

from __future__ import annotations

import re

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
PCI_BUS_ID = "PCI_BUS_ID"

_UUID_ENTRY = re.compile(r"(GPU|MIG)-[0-9A-Za-z/._:-]+")


def visible_entries(inherited: str | None) -> tuple[str, ...] | None:
    """The usable entries of an inherited CUDA_VISIBLE_DEVICES; None when it was not set at all.

    "" (and "-1") mean no GPU; "0,2,x,1" is ("0", "2"): CUDA stops at the first invalid entry."""
    if inherited is None:
        return None
    entries: list[str] = []
    for raw in inherited.split(","):
        entry = raw.strip()
        if entry.isdigit() or _UUID_ENTRY.fullmatch(entry):
            entries.append(entry)
        else:
            break
    return tuple(entries)


def usable_gpu_count(hardware_count: int, inherited: str | None) -> int:
    """How many GPU slots the queue may hand out: the inherited list's length, at most the hardware's."""
    entries = visible_entries(inherited)
    return hardware_count if entries is None else min(hardware_count, len(entries))


def job_cuda_env(slots: tuple[int, ...], inherited: str | None) -> dict[str, str]:
    """The CUDA variables for a job holding `slots` (no slot: "" so it cannot take a GPU by accident).

    A slot past the inherited list (the queue never hands one out) raises ValueError."""
    entries = visible_entries(inherited)
    if entries is None:
        devices = [str(slot) for slot in slots]
    else:
        if any(slot >= len(entries) or slot < 0 for slot in slots):
            raise ValueError(f"GPU slots {list(slots)} are not all in CUDA_VISIBLE_DEVICES={inherited}")
        devices = [entries[slot] for slot in slots]
    return {CUDA_VISIBLE_DEVICES: ",".join(devices), CUDA_DEVICE_ORDER: PCI_BUS_ID}


def device_labels(slots: tuple[int, ...], inherited: str | None) -> tuple[str, ...]:
    """What CUDA and nvidia-smi call each slot here: its inherited CUDA_VISIBLE_DEVICES entry ("3",
    "GPU-5d3c…"), or the slot's own number when nothing was inherited (slot 0 is GPU 0).  What the
    Jobs table, a job's details and `jobs --json` show, so "3" there is the GPU nvidia-smi calls 3."""
    entries = visible_entries(inherited)
    if entries is None:
        return tuple(str(slot) for slot in slots)
    return tuple(entries[slot] if 0 <= slot < len(entries) else f"slot {slot}" for slot in slots)


def short_label(label: str) -> str:
    """A UUID entry cut to its first 8 hex digits for a narrow column ("GPU-5d3c0a6e…")."""
    kind, _, rest = label.partition("-")
    return f"{kind}-{rest[:8]}…" if kind in ("GPU", "MIG") and len(rest) > 8 else label


def nvml_index(entry: str, nvml_uuids: tuple[str, ...]) -> int | None:
    """The NVML index an entry names: an index as it is, a GPU UUID (or a unique prefix of one, as
    CUDA accepts) by NVML's list; None for a MIG instance or a UUID that NVML does not list."""
    if entry.isdigit():
        return int(entry)
    if entry.startswith("GPU-"):
        matches = [i for i, uuid in enumerate(nvml_uuids) if uuid.startswith(entry)]
        return matches[0] if len(matches) == 1 else None
    return None


def physical_gpus(
    slots: tuple[int, ...], inherited: str | None, nvml_uuids: tuple[str, ...]
) -> tuple[int | None, ...]:
    """The NVML index of each slot (None where it cannot be known, e.g. a MIG instance)."""
    entries = visible_entries(inherited)
    if entries is None:
        return tuple(slots)
    return tuple(nvml_index(entries[s], nvml_uuids) if 0 <= s < len(entries) else None for s in slots)
