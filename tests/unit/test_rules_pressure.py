"""PSI_FULL_SEVERE, PSI_PRESSURE, PSI_STALLS."""

from findings_helpers import T0, build, psi, psi_ramp, run


def test_full_severe_held_30s():
    # full avg10 at 75% from tick 10 to tick 45: 35 s held.
    f, _ = run("PSI_FULL_SEVERE", build(n=61, psi_at=psi_ramp(full_pct=50, some_pct=60,
                                                              full_avg10=lambda k: 75.0 if 10 <= k <= 45 else 3.0)))
    assert f.severity == "CRIT"
    assert f.evidence.time_range == (T0 + 10, T0 + 45)
    assert f.evidence.values["held_s"] == 35
    assert f.evidence.values["full_avg10_peak"] == 75.0
    assert f.evidence.section == "psi"


def test_full_severe_not_for_a_short_spike():
    # 20 s above 60% is not 30 s; two spikes separated by a dip do not add up.
    def avg10(k):
        return 90.0 if 5 <= k <= 25 or 27 <= k <= 40 else 10.0
    assert run("PSI_FULL_SEVERE", build(n=61, psi_at=psi_ramp(full_avg10=avg10)))[0] is None


def test_full_severe_skipped_without_full_line_or_series():
    f, why = run("PSI_FULL_SEVERE", build(psi_at=psi_ramp(no_full=True)))
    assert f is None and "'full' line" in why
    f, why = run("PSI_FULL_SEVERE", build(drop=("psi",), missing={
        "series/proc/pressure/memory": ("unavailable", "kernel without PSI (before 4.20)")}))
    assert why == "needs series/proc/pressure/memory (unavailable: kernel without PSI (before 4.20))"


def test_psi_pressure_warn_and_high():
    f, _ = run("PSI_PRESSURE", build(psi_at=psi_ramp(some_pct=12, full_pct=8, full_avg10=lambda k: 8.0 + k)))
    assert f.severity == "WARN"
    assert round(f.evidence.values["fmem"], 3) == 8.0
    assert round(f.evidence.values["smem"], 3) == 12.0
    assert f.evidence.values["full_avg10_peak"] == 38.0
    f, _ = run("PSI_PRESSURE", build(psi_at=psi_ramp(some_pct=50, full_pct=45)))
    assert f.severity == "HIGH"


def test_psi_pressure_negative():
    assert run("PSI_PRESSURE", build(psi_at=psi_ramp(some_pct=10, full_pct=4.9)))[0] is None


def test_psi_pressure_falls_back_to_snapshots_and_skips_without_them():
    ds = build(drop=("psi",), start={"psi": psi(full_total=0, some_total=0)},
               end={"psi": psi(full_total=int(30 * 1e6 * 0.5), some_total=int(30 * 1e6 * 0.6))})
    f, _ = run("PSI_PRESSURE", ds)
    assert f.severity == "HIGH" and f.evidence.artifacts == ["proc/pressure/memory@start",
                                                             "proc/pressure/memory@end"]
    f, why = run("PSI_PRESSURE", build(drop=("psi",)))
    assert f is None and why.startswith("needs series/proc/pressure/memory (not in this bundle) or")


def test_psi_stalls_info_above_senpai_level():
    f, _ = run("PSI_STALLS", build(psi_at=psi_ramp(some_pct=0.5)))
    assert f.severity == "INFO" and round(f.evidence.values["smem"], 2) == 0.5
    assert run("PSI_STALLS", build(psi_at=psi_ramp(some_pct=0.1)))[0] is None


def test_psi_stalls_missing():
    ds = build(drop=("psi",), missing={"series/proc/pressure/memory": ("denied", "x")})
    assert run("PSI_STALLS", ds)[1].startswith("needs series/proc/pressure/memory (denied: x)")
