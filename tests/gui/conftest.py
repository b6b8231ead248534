"""Fixtures for tests that open real Qt widgets (offscreen)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def services(app_paths, qapp):  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_services

    s = create_services(app_paths)
    yield s
    s.shutdown()


@pytest.fixture
def main_window(services, qtbot) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_main_window

    window = create_main_window(services)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
