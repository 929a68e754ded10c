"""Stacks in the maps -> frame names, while their processes still live.

A user address can only be symbolized while its process lives (its
/proc/PID/maps says what was mapped where): new processes reported by
the BPF program get their symbol tables warmed as they appear, within a
small budget per poll, and the stacks recorded so far are resolved every
second or so, biggest first, within a budget per second of the window.
At the end, what is still unresolved past the deadline says so with a
placeholder. A fault stack's SP word may give the caller of a frameless
leaf (``leaf_caller``, leaf_frame.py), and a brk/mmap stack's the caller of
the frameless syscall wrapper. The symbol tables themselves are procsyms.py's.

Kernel interfaces: the BPF maps ``fault_counts``/``stacks``/``leaf_words`` and
``heap``/``sys_stacks``/``heap_leaf`` (stack maps: BPF_MAP_TYPE_STACK_TRACE),
through fdmaps.py.
"""

from __future__ import annotations

import time

from snapcollect.bundle.names import BPF_FAULT_STACKS_FOLDED, BPF_HEAP_GROWTH
from snapcollect.collect.bpf import leaf_frame

WARM_BUDGET_S = 0.05            # per poll, for symbol caches of new processes
STACK_NOT_RECORDED = -1000      # SC_STACK_NOT_RECORDED: file mmaps keep no stack
EEXIST = 17                     # a stack id of -EEXIST: the hash bucket was taken by another stack

# the aggregate map, the stack map its keys point into, the artifact it
# feeds, and the weight that orders the resolving
RESOLVED_MAPS = (("fault_counts", "stacks", BPF_FAULT_STACKS_FOLDED, int),
                 ("heap", "sys_stacks", BPF_HEAP_GROWTH, lambda v: int(v.grow_bytes)))
# the SP-word map of each (memevents.bpf.c), the stack map its stack ids
# point into, the artifact, and the weight that orders the checking
LEAF_MAPS = (("leaf_words", "stacks", BPF_FAULT_STACKS_FOLDED, int),
             ("heap_leaf", "sys_stacks", BPF_HEAP_GROWTH, lambda v: int(v.grow_bytes)))


class StackResolver:
    def __init__(self, symbols, maps, unavailable):
        self.symbols = symbols
        self.maps = maps
        self.unavailable = unavailable
        self.unresolved = 0           # placeholders written for want of time

    def warm(self, tasks: list[int], budget_s: float = WARM_BUDGET_S) -> None:
        """Symbol caches for processes just reported, newest first (the
        older ones are the likelier to be gone already)."""
        end = time.monotonic() + budget_s
        for tgid in reversed(dict.fromkeys(tasks)):
            if time.monotonic() > end:
                self.symbols.not_warmed += 1
                continue
            try:
                self.symbols.warm(tgid)
            except Exception:  # noqa: BLE001 - a process that vanished
                pass

    def resolve_pass(self, budget_s: float) -> int:
        """Symbolize stacks not seen yet, and check their SP words, while
        their processes still live; returns how many were left for want of
        time."""
        end = time.monotonic() + budget_s
        left = 0
        waiting: set[int] = set()          # processes with stacks still to resolve
        for map_name, stack_table, artifact, weight in RESOLVED_MAPS:
            if artifact not in self.unavailable:
                left += self._budgeted(
                    map_name, stack_table, weight, end, waiting,
                    done=lambda k, t=stack_table: self.symbols.is_resolved(t, k.tgid, k.ustack),
                    work=lambda table, k, t=stack_table: self.symbols.user_stack(table, t, k.tgid, k.ustack))
        for words_map, stack_table, artifact, weight in LEAF_MAPS:
            if artifact not in self.unavailable:
                left += self._budgeted(
                    words_map, stack_table, weight, end, waiting,
                    done=lambda k, t=stack_table: not k.word or self.symbols.leaf_checked(
                        t, k.tgid, k.ustack, k.word),
                    work=lambda table, k, t=stack_table: self.symbols.leaf_caller(
                        table, t, k.tgid, k.ustack, k.word))
        # the symbols of exited processes whose stacks are all resolved can go
        self.symbols.forget_dead(keep=waiting)
        return left

    def _budgeted(self, map_name: str, stack_table: str, weight, end: float, waiting: set[int],
                  done, work) -> int:
        """``work(table, key)`` on each key of ``map_name`` with a stack
        that is not ``done``, biggest first (so that a short budget goes to
        what matters), until ``end``; the processes of what was left go in
        ``waiting``, and their count is returned."""
        try:
            items = self.maps.items(map_name)
            table = self.maps.table(stack_table)
        except Exception:  # noqa: BLE001 - a program without the map
            return 0
        items.sort(key=lambda kv: -weight(kv[1]))
        left = 0
        for key, _value in items:
            if key.ustack < 0 or done(key):
                continue
            if time.monotonic() > end:
                left += 1
                waiting.add(key.tgid)
                continue
            try:
                work(table, key)
            except Exception:  # noqa: BLE001 - stack vanished or process gone
                pass
        return left

    def user_frames(self, table_name: str, tgid: int, stack_id: int, deadline: float) -> list[str]:
        """User frames root first; a placeholder when the stack is missing."""
        if stack_id < 0:
            if stack_id == STACK_NOT_RECORDED:
                return ["[stack not recorded]"]
            if -stack_id == EEXIST:
                return ["[stack lost: map collision]"]
            return ["[no user stack]"]
        if not self.symbols.is_resolved(table_name, tgid, stack_id) and time.monotonic() > deadline:
            self.unresolved += 1
            return ["[not symbolized: out of time]"]
        try:
            table = self.maps.table(table_name)
            return list(reversed(self.symbols.user_stack(table, table_name, tgid, stack_id)))
        except Exception:  # noqa: BLE001
            return ["[stack unreadable]"]

    def leaf_caller(self, table_name: str, tgid: int, stack_id: int, candidate: int) -> tuple[str | None, str]:
        """The frame to insert after the leaf of a stack, from the word at
        its SP (leaf_frame.py), and why or why not; never raises."""
        if stack_id < 0:
            return None, leaf_frame.NO_STACK
        if not candidate:
            return None, leaf_frame.NO_WORD
        try:
            return self.symbols.leaf_caller(self.maps.table(table_name), table_name, tgid, stack_id, candidate)
        except Exception:  # noqa: BLE001 - stack vanished or process gone
            return None, leaf_frame.CODE_UNREADABLE

    def kernel_frames(self, table_name: str, stack_id: int) -> list[str]:
        """Kernel frames innermost first."""
        return self.symbols.kernel_stack(self.maps.table(table_name), stack_id)

    def stats(self) -> dict:
        return {"processes_warmed": self.symbols.warmed,
                "processes_not_warmed": self.symbols.not_warmed,
                "processes_freed": self.symbols.freed}
