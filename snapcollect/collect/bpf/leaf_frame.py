"""The caller of a frameless leaf: whether the word at the user SP is a return address.

Fact owned: x86-64's frame-pointer walk (bpf_get_stackid with
BPF_F_USER_STACK) gives frame 0 = IP, then follows %rbp. A leaf without
a frame of its own (gcc 12 omits it in leaves even with
-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer; glibc's
memset/memcpy never set one up) leaves %rbp pointing at its caller's
frame, so the walk continues at the caller's caller and the caller is
lost. If the leaf has pushed nothing, the word at [SP] is the return
address into that caller (at a function's entry it always is).

The BPF programs record that word; this module decides, from the
process's executable mappings and the mapped files' bytes, whether to
insert it between frame 0 and the rest. It is accepted only when

(a) it lies in an executable file mapping of the process,
(b) the bytes just before it are a call instruction: ``e8 rel32`` (5
    bytes before) or ``ff /2`` (an indirect call, ModRM reg field 2, 2 to
    7 bytes before, 8 with a REX prefix) whose encoded length ends exactly
    at the address,
(c) it is not already frame 0 or frame 1 of the walked stack (then the
    walk had it: nothing to add),
(d) when the call is a direct one (``e8``), its target is not a named
    function other than the one frame 0 is in (a stale return address
    left in a local slot of a function with a frame mostly fails this;
    a call through a PLT stub, which has no symbol, cannot be checked).

A wrong guess is dropped, never inserted. Pure: the caller supplies
``mapping_of(addr)`` and ``code_before(mapping, addr, n)``.
"""

from __future__ import annotations

from typing import Callable

MAX_CALL_LEN = 8          # ff /2 with SIB and disp32 (7) behind a REX prefix

# outcomes, as counted in bpf/fault_stacks.json
RECOVERED = "recovered"
WALK_HAD_IT = "walk_had_it"          # (c): the frame-pointer walk was right
NO_WORD = "no_word"                  # 0: unreadable, kernel-mode fault, or not recorded
NOT_EXECUTABLE = "not_in_executable_mapping"   # (a)
NOT_AFTER_CALL = "not_after_a_call"  # (b)
CODE_UNREADABLE = "code_unreadable"  # (b) could not be checked: the file could not be read
CALLS_ANOTHER = "calls_another_function"  # (d): a direct call to a function that is not the leaf
NO_STACK = "no_stack"                # the walked stack itself is missing
NOT_CHECKED = "not_checked"          # left for want of time (the symbolisation deadline)
PROCESS_GONE = "process_gone"        # no maps snapshot of the process: nothing to check against
REJECTED = (NOT_EXECUTABLE, NOT_AFTER_CALL, CODE_UNREADABLE, CALLS_ANOTHER)


def _ff2_length(modrm: int, sib: int | None) -> int | None:
    """Length of ``ff /2`` (opcode + ModRM + SIB + displacement), None when
    the ModRM is not /2."""
    if (modrm >> 3) & 7 != 2:
        return None
    mod, rm = modrm >> 6, modrm & 7
    n = 2
    if mod == 3:
        return n
    if rm == 4:                       # a SIB byte follows
        if sib is None:
            return None
        n += 1
        if mod == 0 and sib & 7 == 5:
            n += 4                    # no base: disp32
    elif mod == 0 and rm == 5:
        n += 4                        # RIP-relative disp32: call *x(%rip)
    if mod == 1:
        n += 1
    elif mod == 2:
        n += 4
    return n


def _ends_in_indirect_call(code: bytes) -> bool:
    size = len(code)
    for n in range(2, min(size, MAX_CALL_LEN) + 1):
        at = size - n
        op = at
        if 0x40 <= code[at] <= 0x4F:  # a REX prefix before ff
            op = at + 1
        if op + 1 >= size or code[op] != 0xFF:
            continue
        sib = code[op + 2] if op + 2 < size else None
        length = _ff2_length(code[op + 1], sib)
        if length is not None and op + length == size:
            return True
    return False


def follows_call(code: bytes) -> bool:
    """``code``: the bytes that end right at the candidate address (up to
    MAX_CALL_LEN). True when one of them starts a call instruction whose
    length ends exactly there."""
    return (len(code) >= 5 and code[-5] == 0xE8) or _ends_in_indirect_call(code)


def direct_call_target(code: bytes, addr: int) -> int | None:
    """Where the ``e8 rel32`` ending at ``addr`` calls, None when the bytes
    may as well be an indirect call (whose target cannot be checked)."""
    if len(code) < 5 or code[-5] != 0xE8 or _ends_in_indirect_call(code):
        return None
    return (addr + int.from_bytes(code[-4:], "little", signed=True)) & ((1 << 64) - 1)


def decide(candidate: int, walked: list[int], mapping_of: Callable[[int], object | None],
           code_before: Callable[[object, int, int], bytes | None],
           same_function: Callable[[int, int], bool] | None = None) -> str:
    """The outcome for one (stack, SP word) pair. ``walked``: the stack's
    addresses innermost first (frame 0 = IP). ``code_before(mapping, addr,
    n)``: the n bytes of the mapped file before ``addr`` (fewer at the
    file's start), None when unreadable. ``same_function(target, ip)``:
    False only when both are in named functions and they differ."""
    if not candidate:
        return NO_WORD
    if not walked:
        return NO_STACK
    if candidate in walked[:2]:
        return WALK_HAD_IT
    m = mapping_of(candidate)
    if m is None:
        return NOT_EXECUTABLE
    code = code_before(m, candidate, MAX_CALL_LEN)
    if code is None:
        return CODE_UNREADABLE
    if not follows_call(code):
        return NOT_AFTER_CALL
    target = direct_call_target(code, candidate)
    if target is not None and same_function is not None and not same_function(target, walked[0]):
        return CALLS_ANOTHER
    return RECOVERED


def summary(counts: dict[str, int], samples: int) -> dict:
    """The metadata block: samples per outcome, and the share recovered.
    ``dropped``: samples whose SP word was a guess that failed a check."""
    rejected = {k: int(counts.get(k, 0)) for k in REJECTED}
    return {
        "samples": samples,
        "recovered": int(counts.get(RECOVERED, 0)),
        "dropped": sum(rejected.values()),
        "rejected": rejected,
        "walk_had_it": int(counts.get(WALK_HAD_IT, 0)),
        "no_word": int(counts.get(NO_WORD, 0)),
        "no_stack": int(counts.get(NO_STACK, 0)),
        "not_checked": int(counts.get(NOT_CHECKED, 0)),
        "process_gone": int(counts.get(PROCESS_GONE, 0)),
        "recovered_share": round(counts.get(RECOVERED, 0) / samples, 4) if samples else 0.0,
    }
