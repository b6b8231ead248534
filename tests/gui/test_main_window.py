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


def test_settings_dialog_cannot_produce_a_value_validation_refuses(services, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Each spin box's bounds are the setting's range: NaN, infinity or a huge number is clamped
    to a value the settings file may hold, and saving it succeeds."""
    from msquant_desktop.config.settings_store import load_settings
    from msquant_desktop.domain.settings import SETTING_RANGES
    from msquant_desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(services.settings)
    qtbot.addWidget(dialog)
    boxes = {
        "max_concurrent_jobs": dialog.max_jobs,
        "cancel_grace_seconds": dialog.grace,
        "gpu_sample_interval_seconds": dialog.sample_interval,
        "gpu_history_seconds": dialog.history,
        "log_view_max_lines": dialog.log_lines,
    }
    assert set(boxes) == set(SETTING_RANGES)
    for name, box in boxes.items():
        assert (box.minimum(), box.maximum()) == SETTING_RANGES[name], name
        box.setValue(2**31 - 1)
    dialog.grace.setValue(float("inf"))
    dialog.sample_interval.setValue(float("nan"))
    chosen = dialog.chosen_settings().validate()
    assert chosen.cancel_grace_seconds == SETTING_RANGES["cancel_grace_seconds"][1]
    with qtbot.waitSignal(services.settings.sig_settings_changed, timeout=2000):
        dialog.accept()
    assert load_settings(services.paths.settings_file) == chosen


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


def test_a_saved_geometry_larger_than_the_screen_is_fitted_to_it(services, qtbot) -> None:  # type: ignore[no-untyped-def]
    from msquant_desktop.app import create_main_window

    first = create_main_window(services)
    qtbot.addWidget(first)
    area = first.screen().availableGeometry()
    first.setGeometry(area.x() - 300, area.y() - 200, area.width() * 2, area.height() * 2)
    first.close()  # saves that geometry, as a bigger screen would have left it
    second = create_main_window(services)
    qtbot.addWidget(second)
    second.show()
    frame = second.frameGeometry()
    assert area.contains(frame), (area, frame)
    assert second.width() >= area.width() - 40  # as large as the screen allows, not shrunk to nothing


def test_at_scale_factor_2_the_window_fits_the_screen_and_the_filter_stays_visible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os
    import subprocess

    script = (
        "import json, sys\n"
        "from msquant_desktop.app import create_main_window, create_qapplication, create_services\n"
        "from msquant_desktop.config.paths import resolve_paths\n"
        "app = create_qapplication([sys.argv[0]])\n"
        "services = create_services(resolve_paths(sys.argv[1]).ensure())\n"
        "window = create_main_window(services)\n"
        "window.show(); window.show_tab('Jobs'); app.processEvents()\n"
        "area = window.screen().availableGeometry(); frame = window.frameGeometry()\n"
        "tab = window.tab_widget.currentWidget()\n"
        "tab.stack.setCurrentIndex(1); app.processEvents()\n"
        "box = tab.search.rect().translated(tab.search.mapToGlobal(tab.search.rect().topLeft()))\n"
        "print(json.dumps({'fits': area.contains(frame), 'area': area.getRect(), 'frame': frame.getRect(),\n"
        "    'search': tab.search.isVisible() and area.contains(box)}))\n"
        "services.shutdown()\n"
    )
    # A 1920 x 1080 screen at scale 2 is 960 x 540 logical pixels: smaller than the default 1200 x 780.
    screen = tmp_path / "screen.json"
    screen.write_text(
        json.dumps(
            {
                "windowFrameMargins": True,
                "screens": [
                    {
                        "name": "hd",
                        "x": 0,
                        "y": 0,
                        "width": 1920,
                        "height": 1080,
                        "dpr": 1,
                        "logicalDpi": 96,
                        "logicalBaseDpi": 96,
                    }
                ],
            }
        )
    )
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["area"] == [0, 0, 960, 540] and facts["fits"], facts
    assert facts["search"] is True, facts  # the whole filter box is on screen
