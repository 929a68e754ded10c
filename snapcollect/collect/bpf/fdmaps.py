"""The maps the loader handed over, by name, read as maps.BccMaps reads them.

Each map of the handoff description (handoff.py) becomes a ``FdTable``:
its fd, sizes checked against the kernel's own (BPF_OBJ_GET_INFO_BY_FD)
and the layouts of its key and value (bpfsys.Layout). ``items`` gives
keys as objects read by attribute and scalar values as ints, so that
artifacts.py and symbolize.py read either kind of map the same way.
"""

from __future__ import annotations

import os

from snapcollect.collect.bpf.bpfsys import BpfError, Layout, RawMap, encode_int, map_info


PERCPU_TYPES = (5, 6, 10)      # BPF_MAP_TYPE_PERCPU_HASH, _PERCPU_ARRAY, _LRU_PERCPU_HASH


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """How many CPUs the kernel may ever bring up (``0-3`` -> 4)."""
    with open(path) as fh:
        return max(int(part.rsplit("-", 1)[-1]) for part in fh.read().strip().split(",")) + 1


class FdTable:
    def __init__(self, spec: dict, fd: int):
        self.name = str(spec["name"])
        info = map_info(fd)
        value_size = info.value_size
        if info.type in PERCPU_TYPES:
            # a lookup gives one value per possible CPU, each 8-byte aligned
            value_size = (value_size + 7) // 8 * 8 * possible_cpus()
        if (info.key_size, value_size) != (int(spec["key_size"]), int(spec["value_size"])):
            raise BpfError(22, f"map {self.name}: the fd's sizes ({info.key_size}, {value_size}) are "
                               f"not the described ones ({spec['key_size']}, {spec['value_size']})")
        self.raw = RawMap(fd, info.key_size, value_size, info.max_entries)
        self.key = Layout(spec["key"])
        self.value = Layout(spec["value"])
        self.scalar = "int" in spec["value"]

    def decode_value(self, raw: bytes):
        return self.value.decode(raw)

    def items(self) -> list:
        return [(self.key.decode(k), self.value.decode(v)) for k, v in self.raw.items()]

    def get(self, key_int: int):
        raw = self.raw.lookup(encode_int(key_int, self.raw.key_size))
        return None if raw is None else self.value.decode(raw)

    def addresses(self, stack_id: int) -> list[int]:
        """A stack trace map's entry: addresses, innermost first."""
        raw = self.raw.lookup(encode_int(stack_id, 4, signed=True))
        if raw is None:
            raise KeyError(stack_id)
        value = self.value.decode(raw)
        ips = value.ip if hasattr(value, "ip") else value
        out = []
        for addr in ips:
            if not addr:
                break
            out.append(int(addr))
        return out


class FdMaps:
    def __init__(self, specs: list[dict], fds: list[int]):
        self.tables: dict[str, FdTable] = {}
        for spec in specs:
            self.tables[str(spec["name"])] = FdTable(spec, fds[int(spec["fd"])])

    def table(self, name: str) -> FdTable:
        return self.tables[name]

    def items(self, name: str) -> list:
        return self.tables[name].items()

    def array_ints(self, name: str, slots: int) -> list[int]:
        table = self.tables[name]
        return [int(table.get(i) or 0) for i in range(slots)]

    def close(self) -> None:
        for t in self.tables.values():
            try:
                os.close(t.raw.fd)
            except OSError:
                pass
        self.tables = {}
