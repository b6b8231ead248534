"""The real main window, offscreen: tabs, empty states, status bar, menus, remembered state."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QLineEdit, QWidget

from msquant_desktop.ui.empty_state import EmptyState
from msquant_desktop.ui.main_window import TAB_TITLES


def test_four_tabs_in_order(main_window) -> None:  # type: ignore[no-untyped-def]
    assert main_window.tab_titles() == list(TAB_TITLES)


def test_each_tab_shows_a_real_empty_state(main_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    # The GPUs tab has no empty state: without a GPU it says so and still plots the host (checked below).
    for title in ("Projects", "Clusters", "Jobs"):
        main_window.show_tab(title)
        tab: QWidget = main_window.tab_widget.currentWidget()
        empties = [w for w in tab.findChildren(EmptyState) if w.isVisible()]
        assert empties, f"{title} has no visible empty state"
        assert empties[0].title_label.text()
        assert len(empties[0].message_label.text()) > 40
        assert not tab.grab().isNull()
    main_window.show_tab("GPUs")
    gpus = main_window.tab_widget.currentWidget()
    qtbot.waitUntil(lambda: "No NVIDIA GPU found" in gpus.status.text(), timeout=10_000)


def test_status_bar_has_jobs_gpu_and_cluster_fields(main_window) -> None:  # type: ignore[no-untyped-def]
    texts = [main_window.jobs_status.text(), main_window.gpu_status.text(), main_window.cluster_status.text()]
    assert all(texts)
    assert main_window.jobs_status.isVisible()


def test_menus_offer_settings_and_about(main_window) -> None:  # type: ignore[no-untyped-def]
    actions = [
        a.text()
        for menu in main_window.menuBar().findChildren(type(main_window.menuBar().addMenu("x")))
        for a in menu.actions()
    ]
    assert "&Settings…" in actions
    assert any(a.startswith("&About") for a in actions)


def test_geometry_and_last_tab_are_restored(services, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_main_window

    first = create_main_window(services)
    qtbot.addWidget(first)
    first.show()
    first.resize(700, 520)
    first.move(40, 30)
    first.show_tab("Jobs")
    first.close()
    second = create_main_window(services)
    qtbot.addWidget(second)
    assert second.current_tab_title() == "Jobs"
    assert (second.width(), second.height()) == (700, 520)


def test_settings_dialog_saves_and_refuses_nothing_invalid(services, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.config.settings_store import load_settings
    from msquant_desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(services.settings)
    qtbot.addWidget(dialog)
    dialog.max_jobs.setValue(3)
    dialog.grace.setValue(2.5)
    with qtbot.waitSignal(services.settings.sig_settings_changed, timeout=2000):
        dialog.accept()
    saved = load_settings(services.paths.settings_file)
    assert saved.max_concurrent_jobs == 3 and saved.cancel_grace_seconds == 2.5


def test_close_guard_can_keep_the_window_open(main_window) -> None:  # type: ignore[no-untyped-def]
    answers = [False, True]
    main_window.add_close_guard(lambda: answers.pop(0))
    assert main_window.close() is False and main_window.isVisible()
    assert main_window.close() is True


def test_none_refcount_is_stable_over_many_qt_calls(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Guard against PySide6 6.12 on Python 3.11, which drops None's refcount on every void call."""
    edit = QLineEdit()
    qtbot.addWidget(edit)
    for _ in range(100):
        edit.setReadOnly(True)
    before = sys.getrefcount(None)
    for _ in range(5000):
        edit.setReadOnly(True)
        edit.setText("x")
    after = sys.getrefcount(None)
    assert abs(after - before) < 500, f"None refcount moved by {after - before} over 10000 Qt calls"


def test_a_failing_close_guard_never_traps_the_window(main_window) -> None:  # type: ignore[no-untyped-def]
    def broken() -> bool:
        raise RuntimeError("the store is gone")

    main_window.add_close_guard(broken)
    assert main_window.close() is True


def test_ctrl_1_to_4_switch_tabs(main_window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    main_window.activateWindow()
    qtbot.waitActive(main_window)
    for number, title in reversed(list(enumerate(TAB_TITLES, start=1))):
        qtbot.keyClick(main_window, Qt.Key(Qt.Key.Key_0 + number), Qt.KeyboardModifier.ControlModifier)
        assert main_window.current_tab_title() == title
