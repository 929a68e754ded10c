"""The caller of a frameless leaf: the checks (leaf_frame.py), the reading
of the mapped file (procsyms.py) and the insertion into the fault stacks
(aggregates.py, artifacts.py), on fake maps and files (no root needed)."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

from snapcollect.collect.bpf import artifacts, leaf_frame
from snapcollect.collect.bpf.aggregates import FaultRow, HeapRow, LeafWord, fault_documents, heap_document
from snapcollect.collect.bpf.procsyms import Mapping, ProcSymbolizer
from snapcollect.collect.bpf.symbolize import StackResolver

KERNEL_ADDR = 0xFFFFFFFF81000000


# -- the call instruction before the address -----------------------------------

def test_a_direct_call_ends_at_the_address():
    assert leaf_frame.follows_call(b"\x90\x90\x90\xe8\x10\x20\x30\x40")


def test_indirect_calls_of_each_length_end_at_the_address():
    assert leaf_frame.follows_call(b"\x90" * 6 + b"\xff\xd0")                  # call *%rax
    assert leaf_frame.follows_call(b"\x90" * 5 + b"\x41\xff\xd4")              # call *%r12
    assert leaf_frame.follows_call(b"\x90\x90\xff\x15\x01\x02\x03\x04")        # call *x(%rip)
    assert leaf_frame.follows_call(b"\x90" * 5 + b"\xff\x50\x08")              # call *0x8(%rax)
    assert leaf_frame.follows_call(b"\x90" * 4 + b"\xff\x54\x24\x08")          # call *0x8(%rsp)


def test_other_bytes_and_jumps_are_no_call():
    assert not leaf_frame.follows_call(b"\x90" * 8)
    assert not leaf_frame.follows_call(b"\x90" * 6 + b"\xff\xe0")              # jmp *%rax (/4)
    assert not leaf_frame.follows_call(b"\xe8\x00\x00\x00\x00\x90")            # a call, but not ending here
    assert not leaf_frame.follows_call(b"")
    assert not leaf_frame.follows_call(b"\xff")


def test_a_direct_calls_target_is_read_and_an_indirect_one_has_none():
    # e8 rel32 = -0x100 ending at 0x1234: calls 0x1134
    assert leaf_frame.direct_call_target(b"\x90\x90\x90\xe8\x00\xff\xff\xff", 0x1234) == 0x1134
    assert leaf_frame.direct_call_target(b"\x90\x90\x90\xe8\x10\x00\x00\x00", 0x1234) == 0x1244
    assert leaf_frame.direct_call_target(b"\x90" * 6 + b"\xff\xd0", 0x1234) is None
    # bytes that read both as e8 rel32 and as ff d0: the target cannot be trusted
    assert leaf_frame.direct_call_target(b"\x90\x90\x90\xe8\x00\x00\xff\xd0", 0x1234) is None


# -- the decision ----------------------------------------------------------------

CALL = b"\x90\x90\x90\xe8\x00\x00\x00\x00"
EXEC = SimpleNamespace(name="exe")


def _decide(candidate, walked=(0x1100, 0x2000), code=CALL):
    def mapping_of(a):
        return EXEC if 0x1000 <= a < 0x3000 else None
    return leaf_frame.decide(candidate, list(walked), mapping_of, lambda m, a, n: code)


def test_a_word_after_a_call_in_an_executable_mapping_is_recovered():
    assert _decide(0x1234) == leaf_frame.RECOVERED


def test_hostile_words_are_dropped_or_ignored():
    assert _decide(0) == leaf_frame.NO_WORD
    assert _decide(KERNEL_ADDR) == leaf_frame.NOT_EXECUTABLE
    assert _decide(0x10) == leaf_frame.NOT_EXECUTABLE                # unmapped
    assert _decide((1 << 64) - 1) == leaf_frame.NOT_EXECUTABLE
    assert _decide(0x1234, code=b"\x00" * 8) == leaf_frame.NOT_AFTER_CALL
    assert _decide(0x1234, code=None) == leaf_frame.CODE_UNREADABLE
    assert _decide(0x1234, walked=()) == leaf_frame.NO_STACK


def test_a_direct_call_to_another_named_function_is_dropped():
    def mapping_of(a):
        return EXEC if 0x1000 <= a < 0x3000 else None
    seen = []

    def same(target, ip):
        seen.append((target, ip))
        return False
    code = b"\x90\x90\x90\xe8\x00\xff\xff\xff"
    assert leaf_frame.decide(0x1234, [0x1100, 0x2000], mapping_of, lambda m, a, n: code, same) == \
        leaf_frame.CALLS_ANOTHER
    assert seen == [(0x1134, 0x1100)]
    assert leaf_frame.decide(0x1234, [0x1100, 0x2000], mapping_of, lambda m, a, n: code,
                             lambda t, ip: True) == leaf_frame.RECOVERED
    # an indirect call: nothing to compare, kept
    assert leaf_frame.decide(0x1234, [0x1100, 0x2000], mapping_of, lambda m, a, n: b"\x90" * 6 + b"\xff\xd0",
                             same) == leaf_frame.RECOVERED


def test_a_word_the_walk_already_has_is_not_added():
    assert _decide(0x2000) == leaf_frame.WALK_HAD_IT
    assert _decide(0x1100) == leaf_frame.WALK_HAD_IT


def test_the_summary_counts_the_dropped_guesses():
    s = leaf_frame.summary({leaf_frame.RECOVERED: 6, leaf_frame.NOT_EXECUTABLE: 2,
                            leaf_frame.NOT_AFTER_CALL: 1}, 10)
    assert s["recovered"] == 6 and s["dropped"] == 3 and s["recovered_share"] == 0.6
    assert s["rejected"] == {"not_in_executable_mapping": 2, "not_after_a_call": 1, "code_unreadable": 0,
                             "calls_another_function": 0}
    assert leaf_frame.summary({}, 0)["recovered_share"] == 0.0


# -- insertion into the folded stacks ----------------------------------------------

FRAMES = {(10, 1): ["main", "touch_pages"], (10, 2): ["main", "work", "memset"]}


def _frames(tgid, sid):
    return FRAMES.get((tgid, sid), ["[no user stack]"])


def _docs(rows, words):
    return fault_documents(rows, 1, False, 16384, {}, _frames,
                           leaf=lambda tgid, ustack, kstack: list(words.get((tgid, ustack, kstack), [])))


def test_a_recovered_frame_goes_between_the_leaf_and_the_walks_next_frame():
    text, meta = _docs([FaultRow(10, 1, -1, "app", 100)],
                       {(10, 1, -1): [LeafWord("fault_loop", leaf_frame.RECOVERED, 90)]})
    assert sorted(text.splitlines()) == ["app;main;fault_loop;touch_pages 90", "app;main;touch_pages 10"]
    leaf = meta["leaf_frames"]
    assert leaf["samples"] == 100 and leaf["recovered"] == 90 and leaf["no_word"] == 10
    assert leaf["dropped"] == 0


def test_a_dropped_guess_leaves_the_walk_as_it_was_and_is_counted():
    text, meta = _docs([FaultRow(10, 2, -1, "app", 5)],
                       {(10, 2, -1): [LeafWord(None, leaf_frame.NOT_EXECUTABLE, 3),
                                      LeafWord(None, leaf_frame.NOT_AFTER_CALL, 2)]})
    assert text.splitlines() == ["app;main;work;memset 5"]
    assert meta["leaf_frames"]["dropped"] == 5 and meta["leaf_frames"]["recovered"] == 0


def test_a_word_equal_to_the_next_frame_is_not_duplicated():
    text, meta = _docs([FaultRow(10, 2, -1, "app", 4)],
                       {(10, 2, -1): [LeafWord(None, leaf_frame.WALK_HAD_IT, 4)]})
    assert text.splitlines() == ["app;main;work;memset 4"]
    assert meta["leaf_frames"]["walk_had_it"] == 4


def test_words_are_shared_by_the_rows_of_one_stack_and_never_exceed_its_samples():
    # two comms of one process (it called prctl), hostile word counts above the samples
    rows = [FaultRow(10, 1, -1, "app", 3), FaultRow(10, 1, -1, "app2", 2)]
    text, meta = _docs(rows, {(10, 1, -1): [LeafWord("fault_loop", leaf_frame.RECOVERED, 1000)]})
    assert sorted(text.splitlines()) == ["app2;main;fault_loop;touch_pages 2", "app;main;fault_loop;touch_pages 3"]
    assert meta["leaf_frames"]["recovered"] == 5 == meta["leaf_frames"]["samples"]


def test_without_words_the_stacks_are_as_walked():
    text, meta = fault_documents([FaultRow(10, 1, -1, "app", 7), FaultRow(10, -14, -1, "app", 1)], 1, False,
                                 16384, {}, _frames)
    assert sorted(text.splitlines()) == ["app;[no user stack] 1", "app;main;touch_pages 7"]
    assert meta["leaf_frames"]["no_word"] == 8 and meta["leaf_frames"]["recovered"] == 0


# -- the check against a process's maps and the mapped file's bytes -----------------

class _Stacks:
    def __init__(self, stacks):
        self.stacks = stacks

    def addresses(self, stack_id):
        return self.stacks[stack_id]


def _symbolizer_with(tmp_path, code: bytes) -> tuple[ProcSymbolizer, int]:
    blob = tmp_path / "code.bin"
    blob.write_bytes(code)
    sym = ProcSymbolizer()
    me = os.getpid()
    sym.warm(me)
    fake = [Mapping(0x1000, 0x3000, 0, str(blob), ("test", 1))]
    sym._procs[me] = (fake, [0x1000], sym._procs[me][2])
    return sym, me


def test_the_mapped_files_bytes_decide_and_the_name_is_the_symbolizers(tmp_path):
    code = bytearray(b"\x90" * 8192)
    code[0x100:0x105] = b"\xe8\x01\x02\x03\x04"        # a call ending at file offset 0x105
    sym, me = _symbolizer_with(tmp_path, bytes(code))
    table = _Stacks({7: [0x1800, 0x1900]})
    assert sym.leaf_caller(table, "stacks", me, 7, 0x1105) == ("[code.bin]", leaf_frame.RECOVERED)
    assert sym.leaf_caller(table, "stacks", me, 7, 0x1200) == (None, leaf_frame.NOT_AFTER_CALL)
    assert sym.leaf_caller(table, "stacks", me, 7, 0x1900) == (None, leaf_frame.WALK_HAD_IT)
    assert sym.leaf_caller(table, "stacks", me, 7, 0) == (None, leaf_frame.NO_WORD)
    assert sym.leaf_caller(table, "stacks", me, 7, KERNEL_ADDR) == (None, leaf_frame.NOT_EXECUTABLE)
    assert sym.leaf_caller(table, "stacks", me, 7, 0x10) == (None, leaf_frame.NOT_EXECUTABLE)
    assert sym.leaf_caller(table, "stacks", me, 8, 0x1105) == (None, leaf_frame.NO_STACK)


def test_the_bytes_read_are_bounded_and_cached_per_file_and_offset(tmp_path):
    code = bytearray(b"\x90" * 8192)
    code[0x100:0x105] = b"\xe8\x01\x02\x03\x04"
    sym, me = _symbolizer_with(tmp_path, bytes(code))
    m = sym._procs[me][0][0]
    got = sym.code_before(me, m, 0x1105, leaf_frame.MAX_CALL_LEN)
    assert len(got) == leaf_frame.MAX_CALL_LEN and got.endswith(b"\xe8\x01\x02\x03\x04")
    (tmp_path / "code.bin").write_bytes(b"\x00" * 8192)   # changed behind its back: the cache answers
    assert sym.code_before(me, m, 0x1105, leaf_frame.MAX_CALL_LEN) == got
    assert sym.code_before(me, m, 0x1003, leaf_frame.MAX_CALL_LEN) == b"\x00" * 3   # the file's start
    # past the file's end: unreadable, not an error
    assert sym.code_before(me, m, 0x1000 + 9000, leaf_frame.MAX_CALL_LEN) is None


def test_same_function_compares_named_functions_only(tmp_path):
    import ctypes
    libc = ctypes.CDLL(None)

    def addr(fn):
        return ctypes.cast(fn, ctypes.c_void_p).value
    sym = ProcSymbolizer()
    me = os.getpid()
    sym.warm(me)
    assert sym._same_function(me, addr(libc.getpid), addr(libc.getpid) + 1)
    assert not sym._same_function(me, addr(libc.getpid), addr(libc.strlen))
    assert sym._same_function(me, 0x10, addr(libc.strlen))          # unnamed: cannot tell


def test_a_process_without_a_snapshot_is_not_checked():
    sym = ProcSymbolizer()
    gone = 2 ** 22 + 12345           # above pid_max's default: no such process
    assert sym.leaf_caller(_Stacks({1: [0x1000]}), "stacks", gone, 1, 0x1234) == (None, leaf_frame.PROCESS_GONE)


def test_the_resolver_never_raises():
    class Broken:
        def leaf_caller(self, *a):
            raise RuntimeError("boom")

    maps = SimpleNamespace(table=lambda name: None)
    r = StackResolver(Broken(), maps, {})
    assert r.leaf_caller("stacks", 1, 3, 0x1234) == (None, leaf_frame.CODE_UNREADABLE)
    assert r.leaf_caller("stacks", 1, -14, 0x1234) == (None, leaf_frame.NO_STACK)
    assert r.leaf_caller("stacks", 1, 3, 0) == (None, leaf_frame.NO_WORD)


# -- the leaf_words map, read by the artifact writer ------------------------------------

def _writer(items, own=()):
    calls = []

    class Resolver:
        def leaf_caller(self, table, tgid, ustack, word):
            calls.append((table, tgid, ustack, word))
            return ("caller", leaf_frame.RECOVERED) if word == 0x1234 else (None, leaf_frame.NOT_EXECUTABLE)

    maps = SimpleNamespace(items=lambda name: items if name == "leaf_words" else [])
    w = artifacts.ArtifactWriter(None, maps, Resolver(), None, {}, set(own), "perf")
    return w, calls


def _key(tgid, ustack, kstack, word):
    return SimpleNamespace(tgid=tgid, ustack=ustack, kstack=kstack, word=word)


def test_leaf_words_are_checked_per_stack_biggest_first_and_own_processes_left_out():
    w, calls = _writer([(_key(10, 1, -1, 0x999), 2), (_key(10, 1, -1, 0x1234), 5), (_key(99, 1, -1, 0x1234), 7)],
                       own={99})
    leaf = w.fault_leaf(time.monotonic() + 60)
    assert leaf(10, 1, -1) == [LeafWord("caller", leaf_frame.RECOVERED, 5),
                               LeafWord(None, leaf_frame.NOT_EXECUTABLE, 2)]
    assert leaf(99, 1, -1) == [] and leaf(10, 2, -1) == []
    assert [c[0] for c in calls] == ["stacks", "stacks"]


def test_past_the_deadline_leaf_words_are_not_checked():
    w, calls = _writer([(_key(10, 1, -1, 0x1234), 5)])
    leaf = w.fault_leaf(time.monotonic() - 1)
    assert leaf(10, 1, -1) == [LeafWord(None, leaf_frame.NOT_CHECKED, 5)] and not calls


def test_a_program_without_the_map_gives_no_words():
    def items(name):
        raise KeyError(name)

    w = artifacts.ArtifactWriter(None, SimpleNamespace(items=items), None, None, {}, set(), "perf")
    assert w.fault_leaf(time.monotonic() + 60)(10, 1, -1) == []


# -- checked during the window, while the process lives ---------------------------------

class _Maps:
    def __init__(self, leaf_items, stacks):
        self.leaf_items = leaf_items
        self.stacks = stacks

    def items(self, name):
        return list(self.leaf_items) if name == "leaf_words" else []

    def table(self, name):
        return self.stacks


def test_words_checked_during_the_window_still_count_after_the_process_exited(tmp_path):
    code = bytearray(b"\x90" * 8192)
    code[0x100:0x105] = b"\xe8\x01\x02\x03\x04"
    sym, me = _symbolizer_with(tmp_path, bytes(code))
    maps = _Maps([(_key(me, 7, -1, 0x1105), 9), (_key(me, 7, -1, 0x1200), 1), (_key(me, -14, -1, 0x1105), 1)],
                 _Stacks({7: [0x1800, 0x1900]}))
    r = StackResolver(sym, maps, {})
    assert r.resolve_pass(10.0) == 0
    assert sym.leaf_checked("stacks", me, 7, 0x1105) and sym.leaf_checked("stacks", me, 7, 0x1200)
    assert not sym.leaf_checked("stacks", me, -14, 0x1105)
    sym._procs.clear()               # it exited and its snapshot was freed
    assert r.leaf_caller("stacks", me, 7, 0x1105) == ("[code.bin]", leaf_frame.RECOVERED)
    assert r.leaf_caller("stacks", me, 7, 0x1200) == (None, leaf_frame.NOT_AFTER_CALL)


def test_words_left_for_want_of_time_keep_their_process():
    sym = ProcSymbolizer()
    me = os.getpid()
    maps = _Maps([(_key(me, 7, -1, 0x1105), 9)], _Stacks({7: [0x1800]}))
    r = StackResolver(sym, maps, {})
    assert r.resolve_pass(-1.0) == 1 and not sym.leaf_checked("stacks", me, 7, 0x1105)
    # with the fault stacks unavailable, nothing to check
    assert StackResolver(sym, maps, {"bpf/fault_stacks.folded": "x"}).resolve_pass(-1.0) == 0


# -- brk/mmap stacks: the caller of the frameless syscall wrapper -----------------------

def _heap_frames(tgid, sid):
    return {1: ["main", "sc_map_phase", "mmap"], 2: ["main", "other_phase", "mmap"]}.get(sid, ["[no user stack]"])


def test_a_recovered_word_puts_the_wrappers_caller_back_with_its_calls_and_bytes():
    rows = [HeapRow(10, 1, 1, "app", 10, 10 << 20, 0, 0)]
    words = {(10, 1, 1, "app"): [LeafWord("sc_map_grower", leaf_frame.RECOVERED, 6, 6 << 20),
                          LeafWord(None, leaf_frame.NOT_AFTER_CALL, 3, 3 << 20)]}
    doc = heap_document(rows, {"heap_leaf_keys_full": 2}, _heap_frames, leaf=lambda *k: list(words.get(k, [])))
    e, = doc["entries"]
    assert e["stacks"] == [
        {"frames": ["main", "sc_map_phase", "sc_map_grower", "mmap"], "calls": 6, "bytes": 6 << 20},
        # the rejected word and the call without a word keep the walked stack, merged
        {"frames": ["main", "sc_map_phase", "mmap"], "calls": 4, "bytes": 4 << 20}]
    lf = doc["leaf_frames"]
    assert (lf["samples"], lf["recovered"], lf["dropped"], lf["no_word"]) == (10, 6, 3, 1)
    assert lf["counted_in"] == "calls" and lf["map_full"] == 2
    assert e["calls"] == 10 and e["bytes"] == 10 << 20        # the totals are the heap map's


def test_a_process_that_renamed_itself_has_its_words_per_name():
    # the same stack before and after prctl(PR_SET_NAME): two rows of the heap map,
    # each with the words of its own calls, so the bytes stay with their calls
    rows = [HeapRow(10, 1, 1, "python3", 3, 3 << 12, 0, 0), HeapRow(10, 1, 1, "victim", 1, 200 << 20, 0, 0)]
    words = {(10, 1, 1, "python3"): [LeafWord("small", leaf_frame.RECOVERED, 3, 3 << 12)],
             (10, 1, 1, "victim"): [LeafWord("big", leaf_frame.RECOVERED, 1, 200 << 20)]}
    doc = heap_document(rows, {}, _heap_frames, leaf=lambda *k: list(words.get(k, [])))
    by_comm = {e["comm"]: e["stacks"] for e in doc["entries"]}
    assert by_comm["victim"] == [{"frames": ["main", "sc_map_phase", "big", "mmap"], "calls": 1, "bytes": 200 << 20}]
    assert by_comm["python3"] == [{"frames": ["main", "sc_map_phase", "small", "mmap"], "calls": 3, "bytes": 3 << 12}]


def test_heap_words_are_per_stack_and_kind_and_a_file_mmap_has_none():
    rows = [HeapRow(10, 1, 1, "app", 4, 4096 * 4, 0, 0), HeapRow(10, 1, 0, "app", 2, 8192, 0, 0),
            HeapRow(10, -1000, 2, "app", 5, 5 << 20, 0, 0)]
    asked = []

    def leaf(*key):
        asked.append(key)
        return [LeafWord("grower", leaf_frame.RECOVERED, 4, 4096 * 4)] if key == (10, 1, 1, "app") else []
    doc = heap_document(rows, {}, _heap_frames, leaf=leaf)
    by_kind = {e["kind"]: e for e in doc["entries"]}
    assert by_kind["anon"]["stacks"][0]["frames"] == ["main", "sc_map_phase", "grower", "mmap"]
    assert by_kind["heap"]["stacks"][0]["frames"] == ["main", "sc_map_phase", "mmap"]
    assert by_kind["file"]["stacks"][0]["frames"] == ["[no user stack]"]
    assert sorted(asked) == [(10, 1, 0, "app"), (10, 1, 1, "app")]   # never for the unrecorded stack
    assert doc["leaf_frames"]["samples"] == 6                    # calls with a stack


def test_without_leaf_words_the_heap_stacks_are_as_walked():
    doc = heap_document([HeapRow(10, 1, 1, "app", 3, 3 << 20, 0, 0)], {}, _heap_frames)
    assert doc["entries"][0]["stacks"] == [{"frames": ["main", "sc_map_phase", "mmap"], "calls": 3,
                                            "bytes": 3 << 20}]
    assert doc["leaf_frames"]["no_word"] == 3 and doc["leaf_frames"]["recovered"] == 0


def _heap_key(tgid, ustack, kind, word, comm=b"app"):
    return SimpleNamespace(tgid=tgid, ustack=ustack, kind=kind, word=word, comm=comm)


def test_the_heap_leaf_map_is_read_per_kind_and_checked_against_the_syscall_stacks():
    items = {"heap_leaf": [(_heap_key(10, 1, 1, 0x1234), SimpleNamespace(calls=7, grow_bytes=7 << 12)),
                           (_heap_key(10, 1, 0, 0x999), SimpleNamespace(calls=1, grow_bytes=0)),
                           (_heap_key(99, 1, 1, 0x1234), SimpleNamespace(calls=9, grow_bytes=9))]}
    calls = []

    class Resolver:
        def leaf_caller(self, table, tgid, ustack, word):
            calls.append(table)
            return ("grower", leaf_frame.RECOVERED) if word == 0x1234 else (None, leaf_frame.NOT_EXECUTABLE)

    maps = SimpleNamespace(items=lambda name: items.get(name, []))
    w = artifacts.ArtifactWriter(None, maps, Resolver(), None, {}, {99}, "perf")
    leaf = w.heap_leaf(time.monotonic() + 60)
    assert leaf(10, 1, 1, "app") == [LeafWord("grower", leaf_frame.RECOVERED, 7, 7 << 12)]
    assert leaf(10, 1, 0, "app") == [LeafWord(None, leaf_frame.NOT_EXECUTABLE, 1, 0)]
    assert leaf(10, 1, 1, "other") == []                         # the heap map's row of another comm
    assert leaf(99, 1, 1, "app") == []                           # snapcollect's own
    assert set(calls) == {"sys_stacks"}


def test_the_same_stack_id_in_the_two_stack_maps_is_checked_apart(tmp_path):
    code = bytearray(b"\x90" * 8192)
    code[0x100:0x105] = b"\xe8\x01\x02\x03\x04"
    sym, me = _symbolizer_with(tmp_path, bytes(code))
    fault_stacks, sys_stacks = _Stacks({7: [0x1800, 0x1900]}), _Stacks({7: [0x1105, 0x1900]})

    class Maps:
        def items(self, name):
            return {"leaf_words": [(_key(me, 7, -1, 0x1105), 3)],
                    "heap_leaf": [(_heap_key(me, 7, 1, 0x1105), SimpleNamespace(calls=2, grow_bytes=2))]}.get(name, [])

        def table(self, name):
            return {"stacks": fault_stacks, "sys_stacks": sys_stacks}[name]

    r = StackResolver(sym, Maps(), {})
    assert r.resolve_pass(10.0) == 0
    assert sym.leaf_checked("stacks", me, 7, 0x1105) and sym.leaf_checked("sys_stacks", me, 7, 0x1105)
    # in the fault stack the word is new; in the syscall stack it is already frame 0
    assert r.leaf_caller("stacks", me, 7, 0x1105) == ("[code.bin]", leaf_frame.RECOVERED)
    assert r.leaf_caller("sys_stacks", me, 7, 0x1105) == (None, leaf_frame.WALK_HAD_IT)


def test_a_stale_snapshot_is_read_again_within_the_refresh_budget(tmp_path, monkeypatch):
    # the snapshot was taken before the code was mapped (or before an exec of the same
    # executable): the word is checked again against a fresh read of the maps
    from snapcollect.collect.bpf import procsyms

    code = bytearray(b"\x90" * 8192)
    code[0x100:0x105] = b"\xe8\x01\x02\x03\x04"
    sym, me = _symbolizer_with(tmp_path, bytes(code))
    fresh = sym._procs[me][0]
    exe = sym._procs[me][2]
    reads = []
    monkeypatch.setattr(procsyms, "read_maps", lambda tgid: reads.append(tgid) or list(fresh))
    sym._procs[me] = ([], [], exe)
    table = _Stacks({7: [0x1800, 0x1900], 8: [0x1800]})
    assert sym.leaf_caller(table, "stacks", me, 7, 0x1105) == ("[code.bin]", leaf_frame.RECOVERED)
    assert reads == [me]
    # a word that is not in any executable mapping costs at most MAX_REFRESHES reads
    for word in range(procsyms.MAX_REFRESHES + 3):
        assert sym.leaf_caller(table, "stacks", me, 8, 0x9000 + word) == (None, leaf_frame.NOT_EXECUTABLE)
    assert len(reads) == procsyms.MAX_REFRESHES
