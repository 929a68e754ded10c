"""analysis/trend.py: a sustained rate, a step, or neither."""

from __future__ import annotations

from snapcollect.analysis.trend import trend


def pts(values, t0=100.0, dt=1.0):
    return [(t0 + i * dt, v) for i, v in enumerate(values)]


def test_steady_rise_has_its_slope_as_rate():
    t = trend(pts([1000 + 30 * 1024 * i for i in range(21)]))
    assert t.kind == "steady" and abs(t.rate_kb_s - 30 * 1024) < 1e-6 and t.r2 > 0.999
    assert t.rise_kb == 20 * 30 * 1024


def test_leak_starting_mid_window_is_fitted_from_its_onset():
    values = [5000] * 10 + [5000 + 2048 * i for i in range(1, 11)]
    t = trend(pts(values))
    assert t.kind == "steady" and abs(t.rate_kb_s - 2048) < 1e-6 and t.fit_t0 == 109.0


def test_one_interval_holding_most_of_the_rise_is_a_step_not_a_rate():
    # "Unevictable grew 2.0 GiB/min": 1.5 GiB locked in one second
    values = [100_000] * 30 + [100_000 + 1536 * 1024] * 15
    t = trend(pts(values))
    assert t.kind == "step" and t.rate_kb_s is None
    assert t.step_kb == 1536 * 1024 and (t.step_t0, t.step_t1) == (129.0, 130.0)


def test_noise_and_flat_and_falling():
    assert trend(pts([10, 30, 5, 40, 0, 41, 2, 45])).kind in ("irregular", "step")
    assert trend(pts([7, 7, 7])).kind == "none"
    assert trend(pts([9, 5, 1])).kind == "none"
    assert trend(pts([1])) is None
    # two intervals cannot make a rate
    assert trend(pts([0, 10, 20])).rate_kb_s is None
