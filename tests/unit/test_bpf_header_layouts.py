"""The declared header layouts of the BPF programs against the C text of memevents.bpf.c.

A struct the program uses but does not define comes from the headers
bcc compiles against; a program that reads one (or kernel memory at
all) must say so in header_layouts.PROGRAMS, whose manifest entry the
report turns into "this artifact could be wrong under other headers".
"""

import re

from snapcollect.collect.bpf import header_layouts as hl
from snapcollect.collect.bpf import program
from snapcollect.collect.resources import package_text

SOURCE = package_text("snapcollect.collect.bpf", program.SOURCE_NAME)
# Structs of the user ABI: the same layout on every kernel that has them.
UAPI_STRUCTS = {"bpf_perf_event_data", "bpf_raw_tracepoint_args", "pt_regs"}
UAPI_INCLUDES = re.compile(r"<uapi/")
# Calls and forms that read kernel memory at an address computed from a layout.
KERNEL_READS = re.compile(r"bpf_get_current_task|bpf_probe_read_kernel|bpf_probe_read\s*\(|PT_REGS_|"
                          r"BPF_CORE_READ|bpf_core_read|container_of|offsetof|args->\w+->")
# A kprobe program's own registers (its ctx, struct pt_regs handed over by
# the kprobe ABI): an argument or the return value passed by value is not
# kernel memory read through a layout of the headers.
OWN_REGISTERS = re.compile(r"PT_REGS_(?:PARM[1-6]|RC)\(ctx\)")


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


# The task's saved user registers (bpf_task_pt_regs of the BTF-typed
# current task: the kernel's own BTF, not the headers) read as a word at
# its ptrace-ABI place: the same user ABI as a perf event's registers.
TASK_USER_REGS = re.compile(r"bpf_task_pt_regs\(bpf_get_current_task_btf\(\)\)|"
                            r"bpf_probe_read_kernel\([^;]*\(regs \+ SC_REGS_WORD_\w+ \* 8\)\)")


def _without_pt_regs_reads(text: str) -> str:
    """``text`` less its bpf_probe_read_kernel calls of a ``regs->`` field
    and its reads of the task's saved user registers by ptrace-ABI word."""
    return TASK_USER_REGS.sub("", re.sub(r"bpf_probe_read_kernel\([^;]*&regs->\w+\)", "", text))


def _functions(text: str) -> dict[str, str]:
    """name -> signature + body of every top-level function, probes under bcc's names."""
    out = {}
    head = re.compile(r"^(?:TRACEPOINT_PROBE\((\w+),\s*(\w+)\)|RAW_TRACEPOINT_PROBE\((\w+)\)|"
                      r"(?:static\s+__always_inline\s+)?(?!TRACEPOINT_PROBE|RAW_TRACEPOINT_PROBE)\w[\w\s\*]*?\b(\w+)\s*\([^;{]*\))\s*\{", re.M)
    for m in head.finditer(text):
        depth, i = 0, m.end() - 1
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        if m.group(1):
            name = f"tracepoint__{m.group(1)}__{m.group(2)}"
        elif m.group(3):
            name = f"raw_tracepoint__{m.group(3)}"
        else:
            name = m.group(4)
        out[name] = text[m.start():i + 1]
    return out


def _reach(funcs: dict[str, str], name: str) -> str:
    """The text of ``name`` and of every function of the program it calls."""
    seen, todo, texts = {name}, [name], []
    while todo:
        body = funcs[todo.pop()]
        texts.append(body)
        for callee in re.findall(r"\b(\w+)\s*\(", body):
            if callee in funcs and callee not in seen:
                seen.add(callee)
                todo.append(callee)
    return "\n".join(texts)


TEXT = _strip_comments(SOURCE)
FUNCS = _functions(TEXT)
DEFINED = set(re.findall(r"\bstruct\s+(\w+)\s*\{", TEXT))
PROBES = {n for n in FUNCS if n.startswith(("tracepoint__", "raw_tracepoint__"))} | \
         {n for n, body in FUNCS.items() if re.match(r"int\s+\w+\s*\(", body)}


def test_the_scanner_finds_the_programs_and_their_helpers():
    assert {"tracepoint__oom__mark_victim", "raw_tracepoint__page_fault_user", "on_fault_sample",
            "on_major_fault"} <= PROBES
    assert "record_fault" in _reach(FUNCS, "on_fault_sample")
    assert "fill_head" in FUNCS and "static __always_inline" in FUNCS["fill_head"]


def test_every_program_of_the_c_text_is_declared():
    assert PROBES == set(hl.PROGRAMS)


def test_declared_structs_are_those_the_programs_read():
    for name in PROBES:
        text = _reach(FUNCS, name)
        external = set(re.findall(r"\bstruct\s+(\w+)", text)) - DEFINED
        r = hl.PROGRAMS[name]
        assert set(r.uapi_structs) | set(r.kernel_structs) == external, name
        assert set(r.uapi_structs) <= UAPI_STRUCTS, name
        assert not set(r.kernel_structs) & UAPI_STRUCTS, name
        # A read of kernel memory needs its structs declared as kernel ones,
        # unless it goes through a kprobe's own registers or x86-64's pt_regs
        # only: the kernel hands that very struct to perf event programs as
        # user ABI (bpf_user_pt_regs_t), so its layout cannot differ from the
        # headers'.
        own_regs = "struct pt_regs *ctx" in FUNCS[name]
        reads = OWN_REGISTERS.sub("", text) if own_regs else text
        if KERNEL_READS.search(_without_pt_regs_reads(reads)):
            assert r.kernel_structs, f"{name} reads kernel memory: declare the structs it reads"
        if name.startswith("tracepoint__"):
            assert r.context == hl.TRACEFS, name


def test_a_kprobes_own_registers_are_not_a_kernel_read_but_anything_else_is():
    own = "int p(struct pt_regs *ctx) { u64 v = PT_REGS_PARM1(ctx); return 0; }"
    assert not KERNEL_READS.search(OWN_REGISTERS.sub("", own))
    other = "int p(struct pt_regs *ctx) { struct pt_regs *r = (void *)x; u64 v = PT_REGS_SP(r); return 0; }"
    assert KERNEL_READS.search(OWN_REGISTERS.sub("", other))


def test_the_task_user_registers_read_is_user_abi_but_another_task_read_is_not():
    assert "task_user_sp" in _reach(FUNCS, "on_fault_sample")
    assert "task_user_sp" in _reach(FUNCS, "tracepoint__syscalls__sys_exit_mmap")
    assert not KERNEL_READS.search(_without_pt_regs_reads(FUNCS["task_user_sp"]))
    other = "long r = bpf_task_pt_regs(bpf_get_current_task_btf()); bpf_probe_read_kernel(&x, 8, (void *)(r + 160));"
    assert KERNEL_READS.search(_without_pt_regs_reads(other))
    comm = "struct task_struct *t = bpf_get_current_task_btf(); bpf_probe_read_kernel(&x, 8, &t->mm);"
    assert KERNEL_READS.search(_without_pt_regs_reads(comm))


def test_includes_are_user_abi_only():
    # A kernel-internal header would bring structs of the headers' kernel
    # into any program; only uapi headers (fixed layouts) are allowed.
    for inc in re.findall(r"#include\s+(\S+)", TEXT):
        assert UAPI_INCLUDES.match(inc), inc


def test_a_kernel_struct_read_is_caught():
    text = _strip_comments("""
TRACEPOINT_PROBE(sched, sched_switch)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    return t->pid;
}
""")
    funcs = _functions(text)
    body = _reach(funcs, "tracepoint__sched__sched_switch")
    assert set(re.findall(r"\bstruct\s+(\w+)", body)) - DEFINED == {"task_struct"}
    assert KERNEL_READS.search(body)


def test_manifest_entry_covers_every_artifact_and_says_none_depends_on_the_headers():
    entry = hl.manifest_entry()
    assert set(entry) == set(program.ARTIFACTS)
    for artifact, e in entry.items():
        assert e["programs"] and all(p in hl.PROGRAMS for p in e["programs"]), artifact
        assert e["header_dependent"] is bool(e["kernel_structs"])
    assert entry[program.MAJFAULT_ARTIFACT]["programs"] == [program.MAJFAULT_FUNCTION]
    assert entry["bpf/oom_kill"]["contexts"] == [hl.TRACEFS]
    # today no program reads a kernel struct: tracepoint fields and helpers only
    assert not any(e["header_dependent"] for e in entry.values())


def test_a_declared_kernel_struct_makes_its_artifacts_header_dependent(monkeypatch):
    monkeypatch.setitem(hl.PROGRAMS, "tracepoint__oom__mark_victim",
                        hl.Reads(hl.TRACEFS, kernel_structs=("task_struct",)))
    entry = hl.manifest_entry()
    assert entry["bpf/oom_kill"]["header_dependent"] is True
    assert entry["bpf/oom_kill"]["kernel_structs"] == ["task_struct"]
    assert [a for a, e in entry.items() if e["header_dependent"]] == ["bpf/oom_kill"]
