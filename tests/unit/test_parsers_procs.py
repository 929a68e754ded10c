"""The per-tick ``procs`` series: /proc/PID/stat + uid + VmSwap lines."""

from __future__ import annotations

import pytest

from fixture_files import text
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.procs import parse_procs, parse_stat_line


def test_real_pass_618():
    procs = parse_procs(text("procs-1"))
    assert len(procs) == len([l for l in text("procs-1").splitlines() if l.strip()])
    init = procs[1]
    assert init.ppid == 0 and init.uid == 0
    kthread = procs[2]
    assert kthread.comm == "kthreadd" and kthread.vsize_kb == 0 and kthread.swap_kb is None


def test_comm_with_spaces_and_parentheses():
    procs = parse_procs(text("procs-1"))
    (p,) = [p for p in procs.values() if p.comm == "sc (fix) x) 2"]
    # /proc/PID/stat of the same process, read on its own: the fields after
    # the comm (which spans several words here) must line up.
    stat = text("mapper-stat")
    assert stat.startswith(f"{p.pid} (sc (fix) x) 2) ")
    tail = stat[stat.rfind(")") + 1:].split()
    assert p.minflt >= int(tail[7]) and p.starttime == int(tail[19]) and p.ppid == int(tail[1])
    assert p.vsize_kb == int(tail[20]) // 1024


def test_fields_and_units():
    line = ("4242 (a b) R 1 4242 4242 0 -1 4194304 1000 7 30 2 5 6 0 0 20 0 1 0 9000 "
            "104857600 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
    p = parse_stat_line(line, page_size=4096, uid=1000, swap_kb=12)
    assert (p.pid, p.comm, p.state, p.ppid) == (4242, "a b", "R", 1)
    assert (p.minflt, p.majflt) == (1000, 30)        # fields 10 and 12; cminflt/cmajflt not counted
    assert p.vsize_kb == 102400 and p.rss_kb == 1024 and p.starttime == 9000
    assert parse_stat_line(line, page_size=65536).rss_kb == 256 * 64


def test_tab_and_newline_in_comm():
    tail = " S 1 1 1 0 -1 0 5 0 1 0 0 0 0 0 20 0 1 0 77 4096 1 0"
    text_ = f"10 (x\ty){tail}\t0\t\n11 (line\nbreak){tail}\t1000\t4\n12 (ok){tail}\t0\t0\n"
    procs = parse_procs(text_)
    assert procs[10].comm == "x\ty"
    assert procs[11].comm == "line\nbreak" and procs[11].uid == 1000 and procs[11].swap_kb == 4
    assert procs[12].comm == "ok"


def test_cache_gives_same_result_and_stays_bounded():
    cache: dict = {}
    a = parse_procs(text("procs-1"), 4096, cache)
    b = parse_procs(text("procs-2"), 4096, cache)
    assert a == parse_procs(text("procs-1")) and b == parse_procs(text("procs-2"))
    assert len(cache) <= len(b)


def test_garbage_line():
    with pytest.raises(ParseError):
        parse_procs("not a stat line\t0\t0\n")
