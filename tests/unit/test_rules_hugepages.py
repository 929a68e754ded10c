"""COMPACTION_STALLS, THP_FALLBACK, HUGETLB_EXHAUSTED."""

from findings_helpers import bpf, build, compaction, ramp, run


def test_compaction_stalls_info_and_warn():
    f, _ = run("COMPACTION_STALLS", build(vmstat={"compact_stall": ramp(2), "compact_fail": ramp(0)}))
    assert f.severity == "INFO" and f.evidence.values["stalls"] == 60
    f, _ = run("COMPACTION_STALLS", build(vmstat={"compact_stall": ramp(2), "compact_fail": ramp(2)},
                                         bpf=bpf(compaction=[compaction(3, 77, "qemu", 45)])))
    assert f.severity == "WARN" and f.evidence.values["worst_comm"] == "qemu"
    assert "45 ms" in f.explanation


def test_compaction_stalls_negative_and_missing():
    assert run("COMPACTION_STALLS", build())[0] is None
    f, why = run("COMPACTION_STALLS", build(vmstat={"compact_stall": None}))
    assert f is None and "CONFIG_COMPACTION" in why
    assert run("COMPACTION_STALLS", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_thp_fallback():
    f, _ = run("THP_FALLBACK", build(vmstat={"thp_fault_alloc": ramp(10), "thp_fault_fallback": ramp(5)}))
    assert f.severity == "INFO" and round(f.evidence.values["pct"], 1) == 33.3
    assert run("THP_FALLBACK", build(vmstat={"thp_fault_alloc": ramp(100), "thp_fault_fallback": ramp(1)}))[0] is None
    assert run("THP_FALLBACK", build())[0] is None
    assert run("THP_FALLBACK", build(drop=("vmstat",)))[1].startswith("needs series/proc/vmstat")


def test_hugetlb_exhausted():
    f, _ = run("HUGETLB_EXHAUSTED", build(meminfo={"HugePages_Total": 64, "HugePages_Free": 4,
                                                   "HugePages_Rsvd": 4}))
    assert f.severity == "WARN" and f.title == "Hugetlb pool exhausted: 64 huge pages, 4 free, 4 reserved"
    assert f.evidence.section == "sar-H"
    assert run("HUGETLB_EXHAUSTED", build(meminfo={"HugePages_Total": 64, "HugePages_Free": 10,
                                                   "HugePages_Rsvd": 4}))[0] is None
    assert run("HUGETLB_EXHAUSTED", build())[0] is None      # no pool configured
    assert run("HUGETLB_EXHAUSTED", build(drop=("meminfo",)))[1].startswith("needs series/proc/meminfo")
