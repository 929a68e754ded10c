"""Delay accounting, live (root): kernel.task_delayacct is switched on for the
window and put back after a collection, also one stopped by SIGTERM; a
process swapping in a memory cgroup shows up with its swap-in wait."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from test_scenarios import (CYCLE_200M, _describe, _findings, _snapcollect, finish_collection,  # noqa: F401
                            memcg, render, script, swap_file, workdir)

SYSCTL = "/proc/sys/kernel/task_delayacct"


def _need():
    if os.geteuid() != 0:
        pytest.skip("needs root: the collector switches kernel.task_delayacct")
    if not os.path.exists(SYSCTL):
        pytest.skip("no kernel.task_delayacct sysctl on this kernel")


def _get() -> str:
    with open(SYSCTL) as fh:
        return fh.read().strip()


@pytest.fixture
def sysctl_off():
    _need()
    before = _get()
    with open(SYSCTL, "w") as fh:
        fh.write("0")
    yield
    with open(SYSCTL, "w") as fh:
        fh.write(before)


@pytest.fixture
def delay_swapfile():
    """A swap file of this module's own: test_scenarios' swapfile fixture has
    another path, so a live run that reaches both never swapon/dd's one file
    twice ("Text file busy")."""
    yield from swap_file("/var/tmp/snapcollect-test-delay.swap", 512)


def _collect(duration: float, out: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_snapcollect() + ["collect", "-d", str(duration), "-i", "1", "-o", out, "-q",
                                              "--no-bpf", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _delay_section(md: str) -> str:
    """The Markdown of the delay accounting section alone: up to the next section's anchor."""
    assert '<a id="delays"></a>' in md, "no delay accounting section"
    return md.split('<a id="delays"></a>', 1)[1].split('<a id="', 1)[0]


def _manifest(bundle: str) -> dict:
    from snapcollect.bundle.reader import open_bundle
    return open_bundle(bundle).manifest


def test_sysctl_restored_after_a_collection(sysctl_off, workdir):
    coll = _collect(4, workdir)
    time.sleep(2.5)
    during = _get()
    bundle = finish_collection(coll)
    assert during == "1", "delay accounting was not on during the window"
    assert _get() == "0"
    st = _manifest(bundle)["delayacct"]
    assert st["state"] == "enabled for the window" and st["restored"] and st["reads"] >= 2


def test_sysctl_restored_after_sigterm(sysctl_off, workdir):
    coll = _collect(30, workdir)
    for _ in range(100):
        if _get() == "1":
            break
        time.sleep(0.1)
    assert _get() == "1"
    time.sleep(1)
    coll.send_signal(signal.SIGTERM)
    out, err = coll.communicate(timeout=60)
    assert coll.returncode == 143, err[-2000:]
    assert _get() == "0"


def test_no_delayacct_leaves_it_off(sysctl_off, workdir):
    coll = _collect(2, workdir, "--no-delayacct")
    time.sleep(1.5)
    during = _get()
    bundle = finish_collection(coll)
    assert during == "0" and _get() == "0"
    assert _manifest(bundle)["delayacct"]["state"] == "off: --no-delayacct"


@pytest.mark.parametrize("memcg", ["snapcollect-test-delay"], indirect=True)
def test_swapping_process_has_swapin_wait(sysctl_off, memcg, delay_swapfile, workdir):
    with open(os.path.join(memcg, "memory.swappiness"), "w") as fh:
        fh.write("60")
    # started once accounting is on: the kernel gives a task its delay record at fork only then
    coll = _collect(12, workdir)
    for _ in range(100):
        if _get() == "1":
            break
        time.sleep(0.1)
    thrasher = subprocess.Popen([sys.executable, "-c", script(CYCLE_200M, "sc-swapin", memcg), "40"],
                                stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)          # at its limit, swapping
        assert thrasher.poll() is None, "the swapping process died early"
        bundle = finish_collection(coll)
    finally:
        thrasher.kill()
        thrasher.wait()
    doc, md = render(bundle, workdir)
    assert "Who waited on memory (delay accounting)" in md
    assert "switched on by the collector for the window" in md
    sec = _delay_section(md)
    assert "sc-swapin" in sec and str(thrasher.pid) in sec, sec[:3000]
    from snapcollect.analysis.dataset import load_dataset
    from snapcollect.analysis.delays import delay_facts
    from snapcollect.bundle.reader import open_bundle
    facts = delay_facts(load_dataset(open_bundle(bundle)))
    mine = [p for p in facts.procs if p.pid == thrasher.pid]
    assert mine and mine[0].wait_ms["swapin"] > 0 and mine[0].count["swapin"] > 0, facts.procs[:5]
    print(f"sc-swapin: swap-in {mine[0].wait_ms['swapin']:.0f} ms in {mine[0].count['swapin']} waits "
          f"({100 * mine[0].share['swapin']:.1f}%), reclaim {mine[0].wait_ms.get('freepages', 0):.0f} ms, "
          f"thrashing {mine[0].wait_ms.get('thrashing', 0):.0f} ms; residency {facts.residency}")
    by = _findings(doc)
    if "SWAPIN_STALLS" in by:
        assert "sc-swapin" in by["SWAPIN_STALLS"]["title"] or "sc-swapin" in by["SWAPIN_STALLS"]["explanation"]
    print(_describe(doc))


def _collect_beside_an_old_process(workdir: str) -> tuple[int, str, str]:
    """A 4 s collection beside a process started before it, holding 80 MiB
    (so that it is among the followed ones): its pid, the bundle, the report."""
    old = subprocess.Popen([sys.executable, "-c", "import time\nb = b'x' * (80 << 20)\nprint(1, flush=True)\n"
                            "time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    try:
        old.stdout.readline()
        bundle = finish_collection(_collect(4, workdir))
        md = render(bundle, workdir)[1]
    finally:
        old.kill()
        old.wait()
    return old.pid, bundle, md


def _records(bundle: str) -> list[dict]:
    from snapcollect.bundle import names
    from snapcollect.bundle.reader import open_bundle
    return list(open_bundle(bundle).records(names.DELAY_TASKSTATS) or [])


def test_a_process_older_than_the_switch_is_not_counted(sysctl_off, workdir):
    pid, bundle, md = _collect_beside_an_old_process(workdir)
    mine = [r for r in _records(bundle) if r.get("pid") == pid]
    assert mine and all(r["counted"] is False for r in mine), mine[:2]
    sec = _delay_section(md)
    para = [x for x in sec.split("\n\n") if "not counted: started before delay accounting was switched on" in x]
    assert para and f"(pid {pid})" in para[0], sec[:3000]


def test_already_on_counts_every_process(workdir):
    _need()
    before = _get()
    with open(SYSCTL, "w") as fh:
        fh.write("1")
    try:
        pid, bundle, md = _collect_beside_an_old_process(workdir)
        assert _get() == "1"
    finally:
        with open(SYSCTL, "w") as fh:
            fh.write(before)
    assert _manifest(bundle)["delayacct"]["state"] == "already on"
    mine = [r for r in _records(bundle) if r.get("pid") == pid]
    assert mine and all(r["counted"] is True for r in mine), mine[:2]
    sec = _delay_section(md)
    assert "not counted" not in sec, sec[:3000]
