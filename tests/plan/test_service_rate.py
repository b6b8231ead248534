"""Decode speeds: fitted from two measurements, entered, or bounded by the roofline — and labelled."""

from __future__ import annotations

import pytest

from msquant_desktop.domain.service_rate import (
    SOURCE_ENTERED,
    SOURCE_MEASURED,
    SOURCE_ROOFLINE,
    entered,
    entered_tokens_per_s,
    fit_measured,
    from_evaluate_result,
    roofline,
)


def test_fit_recovers_alpha_and_beta() -> None:
    alpha, beta = 0.012, 0.0008
    tps1 = 1 / (alpha + beta)
    tps8 = 8 / (alpha + 8 * beta)
    speed = fit_measured(tps1, tps8)
    assert speed.alpha_s == pytest.approx(alpha) and speed.beta_s == pytest.approx(beta)
    assert speed.source == SOURCE_MEASURED
    assert speed.tokens_per_s(1) == pytest.approx(tps1) and speed.tokens_per_s(8) == pytest.approx(tps8)
    # one replica at batch 8, 200 output tokens each
    assert speed.service_rate(200, 8) == pytest.approx(8 / (200 * (alpha + 8 * beta)))


def test_a_batch_that_is_no_slower_per_step_gives_beta_zero() -> None:
    speed = fit_measured(50.0, 500.0)  # 8 sequences at 62.5 tok/s each: faster than one alone
    assert speed.beta_s == 0.0 and speed.alpha_s == pytest.approx(1 / 50) and "β set to 0" in speed.note


def test_evaluate_result_keys() -> None:
    result = {"decode_tokens_per_s": 40.0, "decode_tokens_per_s_batch8": 240.0, "device": "cuda:0 (H100)"}
    speed = from_evaluate_result(result)
    assert speed.step_time(1) == pytest.approx(1 / 40) and speed.step_time(8) == pytest.approx(8 / 240)
    assert "H100" in speed.note
    with pytest.raises(ValueError, match="decode_tokens_per_s_batch8"):
        from_evaluate_result({"decode_tokens_per_s": 40.0})


def test_roofline_is_bandwidth_over_bytes_read() -> None:
    # 16 GB of weights on a 3.35 TB/s H100: at most ~209 steps/s at batch 1 (facts: the decode roofline)
    speed = roofline(16_000_000_000, 131072, 2048, 3.35e12)
    assert speed.alpha_s == pytest.approx(16e9 / 3.35e12)
    assert speed.beta_s == pytest.approx(131072 * 2048 / 3.35e12)
    assert speed.source == SOURCE_ROOFLINE and "3.35 TB/s" in speed.describe()
    half = roofline(16_000_000_000, 131072, 2048, 3.35e12, efficiency=0.5)
    assert half.tokens_per_s(1) == pytest.approx(speed.tokens_per_s(1) / 2)


def test_entered_speeds() -> None:
    assert entered(0.02, 0.001).source == SOURCE_ENTERED
    one = entered_tokens_per_s(25.0)
    assert one.alpha_s == 0.04 and one.beta_s == 0.0
    with pytest.raises(ValueError):
        entered(0.0, 0.0)
    with pytest.raises(ValueError):
        fit_measured(0.0, 10.0)
