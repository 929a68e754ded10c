"""User symbols without bcc (collect/bpf/procsyms.py, elfsyms.py) and kernel
symbols from a kallsyms file (kallsyms.py). The processes are real: this
test's own (its C library is mapped) and a child that exits."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

from snapcollect.collect.bpf.folded import UNKNOWN
from snapcollect.collect.bpf.kallsyms import KernelSymbols
from snapcollect.collect.bpf.procsyms import Mapping, ProcSymbolizer

LIBC = ctypes.CDLL(None)


def _addr(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


def test_a_libc_function_is_named_through_the_mapping_and_its_elf_symbols():
    sym = ProcSymbolizer()
    me = os.getpid()
    sym.warm(me)
    # inside the function, not only at its first byte
    name = sym.user_frame(me, _addr(LIBC.getpid) + 1)
    assert name in ("getpid", "__getpid", "__GI___getpid"), name
    assert sym.user_frame(me, _addr(LIBC.strlen)) != UNKNOWN


def test_addresses_outside_any_mapping_are_unknown_and_in_a_file_without_symbols_the_module(tmp_path):
    sym = ProcSymbolizer()
    me = os.getpid()
    sym.warm(me)
    assert sym.user_frame(me, 0x10) == UNKNOWN
    # a snapshot naming a mapped file that is no ELF (as JIT dumps are):
    # perf's convention, the module's name in brackets
    blob = tmp_path / "code.bin"
    blob.write_bytes(b"\x90" * 8192)
    fake = [Mapping(0x1000, 0x3000, 0, str(blob), ("test", 1))]
    sym._procs[me] = (fake, [0x1000], sym._procs[me][2])
    assert sym.user_frame(me, 0x1800) == "[code.bin]"
    assert sym.user_frame(me, 0x3000) == UNKNOWN


class _Stacks:
    def __init__(self, stacks):
        self.stacks = stacks

    def addresses(self, stack_id):
        return self.stacks[stack_id]


def test_user_stacks_are_cached_per_table_process_and_stack_id():
    sym = ProcSymbolizer()
    me = os.getpid()
    table = _Stacks({7: [_addr(LIBC.getpid), 0x10]})
    first = sym.user_stack(table, "stacks", me, 7)
    assert first[1] == UNKNOWN and first[0] != UNKNOWN
    table.stacks[7] = []
    assert sym.is_resolved("stacks", me, 7) and sym.user_stack(table, "stacks", me, 7) == first


def test_snapshots_of_exited_processes_are_freed_on_the_second_pass_only():
    sym = ProcSymbolizer()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    me = os.getpid()
    sym.warm(me)
    sym.warm(child.pid)
    assert sym.warmed == 2
    assert sym.forget_dead() == 0
    child.communicate(b"")          # exits and is reaped: /proc/PID is gone
    # first pass that sees it gone: kept, its last stacks may still be unread
    assert sym.forget_dead() == 0
    # not while it has stacks waiting to be resolved
    assert sym.forget_dead(keep={child.pid}) == 0
    assert sym.forget_dead() == 1 and sym.freed == 1
    assert sym.forget_dead() == 0 and sym.user_frame(me, _addr(LIBC.getpid)) != UNKNOWN


def test_kernel_symbols_from_kallsyms_text_symbols_only(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81000000 T _stext\n"
                    "ffffffff81000100 t helper_fn\n"
                    "ffffffff81000180 D some_data\n"
                    "ffffffff81000200 T mem_cgroup_out_of_memory\n"
                    "ffffffffc0000000 t ext4_thing\t[ext4]\n"
                    "garbage line\n")
    ks = KernelSymbols(str(path))
    got = ks.resolve([0xffffffff81000150, 0xffffffff81000190, 0xffffffff81000210, 0x1000,
                      0xffffffffc0000010])
    # a data symbol does not end a function: 0x...190 is still in helper_fn
    assert got == ["helper_fn", "helper_fn", "mem_cgroup_out_of_memory", UNKNOWN, "ext4_thing"]
    assert KernelSymbols(str(tmp_path / "absent")).resolve([0xffffffff81000150]) == [UNKNOWN]


def test_a_stripped_librarys_build_id_names_its_debug_file(tmp_path, monkeypatch):
    from snapcollect.collect.bpf import procsyms
    from snapcollect.collect.bpf.elfsyms import Elf

    me = os.getpid()
    libc = next(m for m in procsyms.read_maps(me) if os.path.basename(m.path).startswith("libc"))
    with open(libc.path, "rb") as fh:
        build_id = Elf(fh).build_id()
    assert build_id and len(build_id) >= 16 and all(c in "0123456789abcdef" for c in build_id)
    where = tmp_path / ".build-id" / build_id[:2]
    where.mkdir(parents=True)
    (where / (build_id[2:] + ".debug")).write_bytes(b"")
    monkeypatch.setattr(procsyms, "DEBUG_DIRS", (str(tmp_path),))
    assert procsyms.debug_file(build_id) == str(where / (build_id[2:] + ".debug"))
    assert procsyms.debug_file("00" + build_id[2:]) is None and procsyms.debug_file(None) is None


def test_kernel_symbols_listed_out_of_address_order_are_sorted(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81000200 T second\n"
                    "ffffffff81000000 T first\n")
    assert KernelSymbols(str(path)).resolve([0xffffffff81000010, 0xffffffff81000210]) == ["first", "second"]
