"""Reading the BPF maps of the loaded object: whole maps and single slots.

Kernel interface, through bcc's tables: bpf(2) BPF_MAP_LOOKUP_BATCH
(5.6+, a few syscalls for a whole map) or, before that,
BPF_MAP_GET_NEXT_KEY + BPF_MAP_LOOKUP_ELEM per key. Keys and values are
bcc's ctypes structures, read by attribute (``key.tgid``).
"""

from __future__ import annotations

import ctypes as ct


def as_int(value) -> int:
    """A scalar map value: items_lookup_batch gives plain ints, items() ctypes."""
    return int(getattr(value, "value", value))


class BccMaps:
    def __init__(self, bpf):
        self.bpf = bpf

    def table(self, name: str):
        return self.bpf[name.encode()]

    def items(self, name: str) -> list:
        """(key, value) pairs of a whole hash map."""
        table = self.table(name)
        try:
            return list(table.items_lookup_batch())   # 5.6+: a few syscalls for the whole map
        except Exception:  # noqa: BLE001 - older kernels: one lookup per key
            return list(table.items())

    def array_ints(self, name: str, slots: int) -> list[int]:
        """The first ``slots`` values of an array of integers."""
        table = self.table(name)
        return [int(table[ct.c_int(i)].value) for i in range(slots)]
