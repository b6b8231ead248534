"""Window geometry and the last tab, remembered between runs in one small JSON file."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from msquant_desktop.config.settings_store import write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class UiState:
    geometry: bytes = b""
    window_state: bytes = b""
    last_tab: str = ""


def load_ui_state(path: Path) -> UiState:
    """The remembered state; a missing or damaged file just means defaults (logged)."""
    if not path.exists():
        return UiState()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return UiState(
            geometry=base64.b64decode(data.get("geometry", "")),
            window_state=base64.b64decode(data.get("window_state", "")),
            last_tab=str(data.get("last_tab", "")),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable window state %s: %s", path, exc)
        return UiState()


def save_ui_state(path: Path, state: UiState) -> None:
    data = {
        "geometry": base64.b64encode(state.geometry).decode("ascii"),
        "window_state": base64.b64encode(state.window_state).decode("ascii"),
        "last_tab": state.last_tab,
    }
    write_text_atomic(path, json.dumps(data) + "\n")
