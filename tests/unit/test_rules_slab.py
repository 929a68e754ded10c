"""SLAB_UNRECLAIMABLE_HIGH, SLAB_GROWTH."""

from findings_helpers import BASE_MEMINFO, BASE_SLABINFO, MEMTOTAL, T0, build, run, slab


def _with(caches, **sizes):
    """The real slabinfo with some caches replaced by given sizes (in one-page slabs)."""
    out = [c for c in caches if c.name not in sizes]
    return out + [slab(name, n) for name, n in sizes.items()]


def test_slab_unreclaimable_high():
    f, _ = run("SLAB_UNRECLAIMABLE_HIGH", build(meminfo={"SUnreclaim": int(MEMTOTAL * 0.15)}))
    assert f.severity == "WARN" and round(f.evidence.values["pct"]) == 15
    assert f.evidence.section == "slabtop" and "proc/slabinfo@end" in f.evidence.artifacts
    assert run("SLAB_UNRECLAIMABLE_HIGH", build())[0] is None
    assert run("SLAB_UNRECLAIMABLE_HIGH", build(drop=("meminfo",)))[1].startswith("needs series/proc/meminfo")


def test_slab_growth_names_the_dentry_cache():
    # 40000 one-page slabs (156 MiB) in 30 s on a 23.5 GiB host: 312 MiB/min > 1% of RAM
    slab0 = BASE_MEMINFO["Slab"]
    ds = build(meminfo={"Slab": lambda k: slab0 + k * 40000 * 4 // 30},
               start={"slabinfo": _with(BASE_SLABINFO, dentry=5000)},
               end={"slabinfo": _with(BASE_SLABINFO, dentry=45000, **{"kmalloc-64": 900})})
    f, _ = run("SLAB_GROWTH", ds)
    assert f.severity == "WARN"
    assert f.evidence.values["cache"] == "dentry"
    assert f.title == "Slab cache dentry grew 156.2 MiB in 30 s (312.5 MiB/min)"
    assert f.evidence.values["objs_end"] == 45000 * 21
    assert f.evidence.time_range == (T0, T0 + 30)


def test_slab_growth_negative_slow_or_not_steady():
    slab0 = BASE_MEMINFO["Slab"]
    slow = build(start={"slabinfo": _with(BASE_SLABINFO, dentry=5000)},
                 end={"slabinfo": _with(BASE_SLABINFO, dentry=6000)},
                 meminfo={"Slab": lambda k: slab0 + k * 100})
    assert run("SLAB_GROWTH", slow)[0] is None
    # big difference, but the Slab series went up and down: not a steady growth
    jumpy = build(start={"slabinfo": _with(BASE_SLABINFO, dentry=5000)},
                  end={"slabinfo": _with(BASE_SLABINFO, dentry=45000)},
                  meminfo={"Slab": lambda k: slab0 + (100000 if k % 2 else 0)})
    assert run("SLAB_GROWTH", jumpy)[0] is None


def test_slab_growth_missing_slabinfo():
    ds = build(drop=("slabinfo",), missing={"proc/slabinfo@start": ("denied", "/proc/slabinfo is root-only")})
    assert run("SLAB_GROWTH", ds) == (None, "needs proc/slabinfo@start (denied: /proc/slabinfo is root-only)")
