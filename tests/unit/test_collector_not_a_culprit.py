"""The collector, what it started and their children are never processes of the incident.

bcc runs helpers (``ausyscall`` at import, tar for kernel headers) as
children of the BPF process; the manifest's ``collector_pids`` lists only
what the collector started itself. The process pass now leaves them out
at the source; bundles of older collectors still have them, and analysis
leaves out the whole tree.
"""

from __future__ import annotations

from findings_helpers import BASE_PROCS, build, proc, run
from snapcollect.analysis import dataset
from snapcollect.collect.sources.processes import PassState, procs_pass


def test_children_of_the_collector_are_left_out_with_it():
    def procs(k):
        bpf = proc(500, "python3", 300 * 1024 + k * 20 * 1024)          # the BPF process, compiling
        helper = proc(501, "ausyscall", 90 * 1024 + k * 10 * 1024)
        grandchild = proc(502, "xz", 80 * 1024 + k * 10 * 1024)
        helper = helper.__class__(**{**helper.__dict__, "ppid": 500})
        grandchild = grandchild.__class__(**{**grandchild.__dict__, "ppid": 501})
        user = proc(600, "app", 100 * 1024 + k * 3 * 1024)
        return {**BASE_PROCS, 500: bpf, 501: helper, 502: grandchild, 600: user}
    ds = build(procs=procs)
    dataset._without(frozenset({500}), ds)
    assert all(not {500, 501, 502} & set(p.value) for p in ds.procs)
    f, _ = run("TOP_GROWER", ds)
    assert f.evidence.values["pid"] == 600


def test_the_process_pass_skips_the_collector_and_its_children():
    import os
    me = os.getpid()
    res = procs_pass(None, PassState(), 2.0, frozenset({me}))
    pids = {int(line.split(" ", 1)[0]) for line in res.text.splitlines() if line}
    assert me not in pids
    parent = os.getppid()
    assert parent in pids or parent == 0       # the pass still sees everyone else


def test_a_long_parent_chain_is_followed_in_linear_time():
    from snapcollect.parsers.records import Point
    chain = {i: proc(i, "c", 10).__class__(**{**proc(i, "c", 10).__dict__, "ppid": i - 1}) for i in range(2, 20002)}
    assert dataset._descendants(frozenset({1}), [Point(0, 0.0, chain)]) == frozenset(range(1, 20002))
