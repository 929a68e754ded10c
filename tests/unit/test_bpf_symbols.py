"""Symbol caches of exited processes are freed, after a grace pass (collect/bpf/symbols.py).

A stand-in for the two bcc entry points the Symbolizer uses
(``SymbolCache(tgid).resolve(addr, demangle)`` and
``libbcc.lib.bcc_free_symcache``); the processes are real: this test's
own and a child that exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

from snapcollect.collect.bpf.symbols import Symbolizer


class FakeBcc:
    def __init__(self):
        self.freed: list[int] = []
        outer = self

        class SymbolCache:
            def __init__(self, tgid):
                self.cache = ("cache", tgid)

            def resolve(self, addr, demangle):
                return (b"main", 0, b"/bin/x") if addr else (None, 0, None)

        def bcc_free_symcache(cache, tgid):
            outer.freed.append(tgid)

        self.SymbolCache = SymbolCache
        self.libbcc = types.SimpleNamespace(lib=types.SimpleNamespace(bcc_free_symcache=bcc_free_symcache))


def test_caches_of_exited_processes_are_freed_on_the_second_pass_only():
    bcc = FakeBcc()
    sym = Symbolizer(bcc)
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    me = os.getpid()
    sym.warm(me)
    sym.warm(child.pid)
    assert sym.user_frame(child.pid, 0x1000) == "main"
    assert sym.forget_dead() == 0
    child.communicate(b"")          # exits and is reaped: /proc/PID is gone
    # first pass that sees it gone: kept, its last stacks may still be unread
    assert sym.forget_dead() == 0 and bcc.freed == []
    assert sym.user_frame(child.pid, 0x1000) == "main"
    # not while it has stacks waiting to be resolved
    assert sym.forget_dead(keep={child.pid}) == 0 and bcc.freed == []
    assert sym.forget_dead() == 1 and bcc.freed == [child.pid] and sym.freed == 1
    # the live process keeps its cache
    assert sym.forget_dead() == 0 and sym.user_frame(me, 0x1000) == "main" and bcc.freed == [child.pid]
