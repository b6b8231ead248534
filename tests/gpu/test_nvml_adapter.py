"""The NVML adapter over the fake's named scenarios, and the real library where it exists."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from msquant_desktop.gpu.fake_nvml import FAKE_ENV, FAKE_PROCS_ENV, SCENARIOS, FakeNvml, fake_from_environment
from msquant_desktop.gpu.monitor import GpuMonitor
from msquant_desktop.gpu.nvml import NvmlAdapter

NO_LIBRARY = "No NVIDIA GPU found: NVML library not found"


def _samples(scenario: str, n: int) -> list:
    adapter = NvmlAdapter(FakeNvml(scenario))
    return [adapter.sample() for _ in range(n)]


def test_two_gpus_give_full_immutable_snapshots() -> None:
    gpus = _samples("two_gpus", 2)[-1]
    assert [g.index for g in gpus] == [0, 1]
    for g in gpus:
        assert g.name == "NVIDIA H100 80GB HBM3" and g.uuid.startswith("GPU-fake")
        assert 0 <= g.utilization_gpu <= 100 and 0 <= g.utilization_memory <= 100
        assert g.memory_total_bytes == 80 * 2**30 and 0 < g.memory_used_bytes < g.memory_total_bytes
        assert g.power_limit_w == 700.0 and 0 < g.power_w <= 700.0
        assert g.sm_clock_mhz == 1980 and g.memory_clock_mhz == 2619 and g.fan_percent is not None
        assert g.error is None
    assert gpus[0].throttle_words == ()
    assert gpus[1].throttle_words == ("power cap", "thermal (software)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpus[0].utilization_gpu = 1.0  # type: ignore[misc]


def test_handles_and_slow_attributes_are_cached() -> None:
    fake = FakeNvml("two_gpus")
    calls: dict[str, int] = {}
    for name in ("nvmlDeviceGetHandleByIndex", "nvmlDeviceGetName", "nvmlDeviceGetEnforcedPowerLimit"):
        original = getattr(fake, name)

        def counting(*args, _name=name, _original=original):  # type: ignore[no-untyped-def]
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        setattr(fake, name, counting)
    adapter = NvmlAdapter(fake)
    for _ in range(5):
        adapter.sample()
    assert calls == {
        "nvmlDeviceGetHandleByIndex": 2,
        "nvmlDeviceGetName": 2,
        "nvmlDeviceGetEnforcedPowerLimit": 2,
    }


def test_a_gpu_failing_mid_run_is_reported_once_and_the_other_keeps_going(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="msquant_desktop.gpu.nvml")
    samples = _samples("failing_gpu", 8)
    assert all(s[1].error is None for s in samples[:3])
    for s in samples[3:]:
        assert s[1].error == "GPU is lost"
        assert s[1].utilization_gpu is None and s[1].memory_used_bytes is None
        assert s[0].error is None and s[0].utilization_gpu is not None
    lost = [r for r in caplog.records if "stopped answering" in r.getMessage()]
    assert len(lost) == 1 and "GPU 1" in lost[0].getMessage()


def test_a_missing_or_unsupported_function_is_not_available_and_logged_once(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="msquant_desktop.gpu.nvml")
    samples = _samples("missing_function", 6)
    for g in samples[-1]:
        assert g.power_w is None and g.fan_percent is None  # not supported / not in the library
        assert g.utilization_gpu is not None and g.temperature_c is not None
        assert g.throttle_mask == 0  # from the older throttle-reasons function
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages  # (power, fan) x 2 GPUs, once each over six samples
    assert any("nvmlDeviceGetFanSpeed" in m and "Function Not Found" in m for m in messages)
    assert any("nvmlDeviceGetPowerUsage" in m and "Not Supported" in m for m in messages)


def test_no_library_says_so_plainly() -> None:
    adapter = NvmlAdapter(FakeNvml("no_library"))
    assert adapter.start() == NO_LIBRARY
    assert adapter.sample() == () and adapter.gpu_count == 0
    reading = GpuMonitor(FakeNvml("no_library")).sample()
    assert reading.unavailable == NO_LIBRARY and reading.gpus == ()
    assert reading.host is not None and reading.host.memory_total_bytes > 0


def test_the_environment_picks_the_fake(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(FAKE_ENV, raising=False)
    assert fake_from_environment() is None
    monkeypatch.setenv(FAKE_ENV, "eight_gpus")
    monkeypatch.setenv(FAKE_PROCS_ENV, "4242:3:1024")
    fake = fake_from_environment()
    assert fake is not None and fake.scenario == "eight_gpus"
    gpus = NvmlAdapter(fake).sample()
    assert len(gpus) == 8 and gpus[3].processes[0].pid == 4242
    assert gpus[3].processes[0].used_memory_bytes == 1024 * 2**20
    monkeypatch.setenv(FAKE_ENV, "three_gpus")
    with pytest.raises(ValueError, match="unknown fake NVML scenario 'three_gpus'.*two_gpus"):
        fake_from_environment()
    monkeypatch.setenv(FAKE_ENV, "two_gpus")
    monkeypatch.setenv(FAKE_PROCS_ENV, "12:9:1")
    with pytest.raises(ValueError, match="GPU 9 does not exist"):
        fake_from_environment()
    assert set(SCENARIOS) == {"two_gpus", "eight_gpus", "failing_gpu", "missing_function", "no_library"}


# -- the real library ---------------------------------------------------------------------------------


def _real_adapter() -> NvmlAdapter:
    adapter = NvmlAdapter()  # the real pynvml
    adapter.start()
    return adapter


@pytest.mark.gpu
def test_real_nvml_reads_every_gpu() -> None:
    adapter = _real_adapter()
    if adapter.unavailable:
        pytest.skip(f"real NVML not usable here: {adapter.unavailable}")
    try:
        gpus = adapter.sample()
        assert len(gpus) == adapter.gpu_count >= 1
        for g in gpus:
            assert g.error is None and g.name
            assert g.memory_total_bytes and g.memory_used_bytes is not None
            assert g.utilization_gpu is not None and 0 <= g.utilization_gpu <= 100
            assert g.temperature_c is not None and 0 < g.temperature_c < 120
    finally:
        adapter.close()


def test_real_nvml_without_a_driver_names_the_reason() -> None:
    adapter = _real_adapter()
    if not adapter.unavailable:
        adapter.close()
        pytest.skip("NVML works on this machine; the no-driver message cannot be seen here")
    assert adapter.unavailable.startswith("No NVIDIA GPU found: ")
    assert adapter.sample() == ()
