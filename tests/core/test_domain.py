"""Pure domain rules: job states, outcomes, specs, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msquant_desktop.config.settings_store import load_settings, save_settings
from msquant_desktop.domain.jobs import (
    ACTIVE_STATES,
    FINAL_STATES,
    JobKind,
    JobOutcome,
    JobSpec,
    JobState,
    JobTarget,
    can_transition,
)
from msquant_desktop.domain.settings import Settings, SettingsError


def test_final_states_have_no_way_out() -> None:
    for final in FINAL_STATES:
        assert final.is_final and not final.is_active
        assert not any(can_transition(final, other) for other in JobState)


def test_active_states_are_not_final() -> None:
    assert ACTIVE_STATES.isdisjoint(FINAL_STATES)
    assert JobState.QUEUED.is_cancellable and not JobState.CANCELLING.is_cancellable


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        (JobOutcome(JobState.COMPLETED, 0), "exit 0"),
        (JobOutcome(JobState.FAILED, 2), "exit 2"),
        (
            JobOutcome(JobState.KILLED, signal=9, reason="probably the OOM killer"),
            "killed by signal 9: probably the OOM killer",
        ),
        (
            JobOutcome(JobState.LOST, reason="no process and no exit record"),
            "lost: no process and no exit record",
        ),
        (JobOutcome(JobState.FAILED_TO_START, reason="No such file"), "failed to start: No such file"),
    ],
)
def test_outcomes_explain_themselves(outcome: JobOutcome, text: str) -> None:
    assert outcome.describe() == text
    assert outcome.was_successful() is (outcome.state is JobState.COMPLETED)


def test_spec_round_trips_through_json() -> None:
    spec = JobSpec(
        name="q",
        argv=("python", "-c", "print('a b; $(x)')"),
        kind=JobKind.QUANTIZE,
        cwd="/tmp",
        env=(("A", "1"),),
        gpus=2,
        meta={"scheme": "W4A16"},
    )
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="command"):
        JobSpec(name="x", argv=())
    with pytest.raises(ValueError, match="negative"):
        JobSpec(name="x", argv=("true",), gpus=-1)
    with pytest.raises(ValueError, match="cluster"):
        JobSpec(name="x", argv=("true",), target=JobTarget.SLURM)


def test_settings_round_trip_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert load_settings(path) == Settings()
    custom = Settings(max_concurrent_jobs=3, cancel_grace_seconds=2.5)
    save_settings(path, custom)
    assert load_settings(path) == custom
    assert json.loads(path.read_text())["schema_version"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"max_concurrent_jobs": "two"}', "max_concurrent_jobs"),
        ('{"max_concurrent_jobs": 0}', "at least 1"),
        ('{"gpu_sample_interval_seconds": 0.1}', "0.25"),
        # json.loads reads NaN, Infinity and overflowing numbers: none of them is a usable setting.
        ('{"cancel_grace_seconds": NaN}', "cancel_grace_seconds must be a finite"),
        ('{"cancel_grace_seconds": Infinity}', "cancel_grace_seconds must be a finite"),
        ('{"gpu_sample_interval_seconds": 1e400}', "gpu_sample_interval_seconds must be a finite"),
        ('{"gpu_sample_interval_seconds": -Infinity}', "gpu_sample_interval_seconds must be a finite"),
        ('{"cancel_grace_seconds": 1e9}', "cancel_grace_seconds must be at least 0 and at most 600"),
        (
            '{"max_concurrent_jobs": 100000000000000000000}',
            "max_concurrent_jobs must be at least 1 and at most 64",
        ),
        ('{"gpu_history_seconds": 99999999999}', "gpu_history_seconds must be at least 60"),
        ('{"log_view_max_lines": 10000000000}', "log_view_max_lines must be at least 100 and at most"),
        ('{"schema_version": 99}', "newer"),
        ("[1, 2]", "JSON object"),
        ("{not json", "cannot read"),
    ],
)
def test_bad_settings_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(path)
    assert "\n" not in str(caught.value) and "settings" in str(caught.value)


def test_every_number_setting_has_the_dialogs_range() -> None:
    """The Settings dialog's spin boxes take their bounds from SETTING_RANGES: every number field
    must be in it, or the dialog could save a value that validation never looks at."""
    from dataclasses import fields

    from msquant_desktop.domain.settings import SETTING_RANGES

    numbers = {f.name for f in fields(Settings) if type(getattr(Settings(), f.name)) in (int, float)}
    assert numbers == set(SETTING_RANGES)
    for name, (low, high) in SETTING_RANGES.items():
        assert low <= getattr(Settings(), name) <= high, name


def test_data_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msquant_desktop.config.paths import resolve_paths

    monkeypatch.setenv("MSQUANT_DATA_DIR", str(tmp_path))
    paths = resolve_paths()
    assert paths.database.is_relative_to(tmp_path) and paths.log_file.is_relative_to(tmp_path)
    assert resolve_paths(tmp_path / "other").config_dir == (tmp_path / "other" / "config").resolve()


def test_names_ending_in_a_newline_are_not_taken_for_valid_ones() -> None:
    """`re.match(...$)` accepts a trailing newline; these checks use full-string matches."""
    from msquant_desktop.domain.projects import OverrideError, validate_override
    from msquant_desktop.domain.quantize import HUB_NAME_RE

    assert HUB_NAME_RE.fullmatch("org/model") and not HUB_NAME_RE.fullmatch("org/model\n")
    with pytest.raises(OverrideError):
        validate_override("+lr\n=0.1")
