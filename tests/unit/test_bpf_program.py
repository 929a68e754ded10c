"""The BPF program is built from the tracepoint fields the kernel has."""

from __future__ import annotations

import pytest

from bpf_fixtures import load
from snapcollect.collect.bpf import program, tracefs

FORMATS = load("tracepoint_formats.json")   # 6.18

# oom:mark_victim before 6.8 (e.g. 5.15): pid only
OLD_MARK_VICTIM = """name: mark_victim
ID: 442
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: "pid=%d", REC->pid
"""


def _all(**override):
    formats = {tp: FORMATS.get(tp) for tp in program.TRACEPOINTS}
    formats.update(override)
    return formats


def test_parse_fields_of_mark_victim():
    fields = tracefs.parse_fields(FORMATS["oom:mark_victim"])
    assert list(fields) == ["pid", "comm", "total_vm", "anon_rss", "file_rss", "shmem_rss", "uid",
                            "pgtables", "oom_score_adj"]
    assert fields["comm"].type == "__data_loc char[]" and fields["comm"].size == 4
    assert fields["oom_score_adj"].signed and fields["oom_score_adj"].size == 2
    assert fields["total_vm"].type == "unsigned long" and fields["total_vm"].offset == 16


def test_full_kernel_compiles_every_probe_with_its_fields():
    plan = program.build_plan(_all())
    assert plan.missing == {}
    # the page-fault tracepoint is compiled as the fallback sampler but is
    # not attached with the others: the perf event samples by default
    assert set(plan.probes) == set(program.TRACEPOINTS) - {program.FAULT_TRACEPOINT}
    assert plan.fault_tracepoint and plan.perf_sampler_problem is None
    assert "#define SC_TP_exceptions__page_fault_user 1" in plan.text
    assert "#define SC_F_oom__mark_victim__anon_rss 1" in plan.text
    assert f"#define SC_FAULT_PERIOD {program.DEFAULT_FAULT_PERIOD}\n" in plan.text
    assert "#define SC_KERNEL_STACKS 0" in plan.text
    assert "int on_fault_sample(" in plan.text
    assert "TRACEPOINT_PROBE(oom, mark_victim)" in plan.text     # the .bpf.c follows the defines


def test_mark_victim_with_pid_only_gets_no_field_defines():
    plan = program.build_plan(_all(**{"oom:mark_victim": OLD_MARK_VICTIM}))
    assert "#define SC_TP_oom__mark_victim 1" in plan.text
    assert "#define SC_F_oom__mark_victim__pid 1" in plan.text
    assert "#define SC_F_oom__mark_victim__comm" not in plan.text
    assert "#define SC_F_oom__mark_victim__anon_rss" not in plan.text


def test_missing_tracepoints_make_their_artifacts_unavailable_with_a_remedy():
    plan = program.build_plan(_all(**{"exceptions:page_fault_user": None, "oom:mark_victim": None}),
                              reasons={"oom:mark_victim": "tracepoint oom:mark_victim does not exist"})
    # page-fault stacks need no tracepoint (the perf event samples them,
    # on any architecture); only without it they would be missing
    assert set(plan.missing) == {"bpf/oom_kill"}
    assert plan.missing["bpf/oom_kill"][0] == "tracepoint oom:mark_victim does not exist"
    assert "#define SC_TP_exceptions__page_fault_user" not in plan.text
    assert not plan.fault_tracepoint


@pytest.mark.parametrize("kw, words", [({"kernel_stacks": True}, "kernel stacks"),
                                       ({"fault_period": 1}, "throttled")])
def test_what_only_the_tracepoint_sampler_can_do_needs_the_tracepoint(kw, words):
    plan = program.build_plan(_all(), **kw)
    assert plan.missing == {} and words in plan.perf_sampler_problem and plan.fault_tracepoint
    plan = program.build_plan(_all(**{"exceptions:page_fault_user": None}), **kw)
    why, remedy = plan.missing["bpf/fault_stacks.folded"]
    assert words in why and "exceptions:page_fault_user" in why and remedy
    assert set(plan.missing) == set(program.FAULT_ARTIFACTS)


def test_perf_sampler_period_against_the_sample_rate_limit():
    assert program.perf_sampler_usable(128, False, 100_000) is None
    assert program.perf_sampler_usable(10, False, 100_000) is None
    assert "perf_event_max_sample_rate=100000" in program.perf_sampler_usable(9, False, 100_000)
    # a kernel that lowered its limit (slow perf interrupts) needs larger N
    assert program.perf_sampler_usable(64, False, 10_000) is not None
    assert program.perf_sampler_usable(128, False, None) is None     # unreadable: the default


def test_reclaim_needs_one_whole_begin_end_pair():
    plan = program.build_plan(_all(**{"vmscan:mm_vmscan_direct_reclaim_end": None}))
    assert "bpf/reclaim" not in plan.missing            # memcg pair is enough
    assert "vmscan:mm_vmscan_direct_reclaim_begin" not in plan.probes
    plan = program.build_plan(_all(**{"vmscan:mm_vmscan_direct_reclaim_end": None,
                                      "vmscan:mm_vmscan_memcg_reclaim_begin": None}))
    assert "bpf/reclaim" in plan.missing


def test_permission_problems_carry_their_own_remedy():
    denied = {tp: None for tp in program.TRACEPOINTS}
    plan = program.build_plan(denied, reasons={tp: "permission denied" for tp in denied},
                              remedies={tp: "run as root" for tp in denied})
    # perf events need no tracefs: the major-fault and page-fault samplers;
    # nor do kprobes (their attach says whether the kernel allows them)
    assert set(plan.missing) == (set(program.ARTIFACTS) - {program.MAJFAULT_ARTIFACT, program.FAULT_FILES_ARTIFACT}
                                 - set(program.FAULT_ARTIFACTS) - set(program.KPROBE_GROUPS))
    assert all(m == ("permission denied", "run as root") for m in plan.missing.values())


def test_options_reach_the_program():
    plan = program.build_plan(_all(), fault_period=1, kernel_stacks=True)
    assert "#define SC_FAULT_PERIOD 1\n" in plan.text and "#define SC_KERNEL_STACKS 1" in plan.text
    with pytest.raises(ValueError):
        program.build_plan(_all(), fault_period=0)


def test_tracefs_mounts():
    text = ("tracefs /sys/kernel/tracing tracefs rw,nosuid 0 0\n"
            "debugfs /sys/kernel/debug debugfs rw 0 0\nproc /proc proc rw 0 0\n")
    assert tracefs.tracefs_mounts(text) == ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]


def test_heap_trace_is_opt_in_and_its_absence_says_why():
    from snapcollect.collect.bpf.host_plan import make_plan
    from snapcollect.collect.options import CollectOptions

    formats = {tp: FORMATS.get(tp) for tp in program.TRACEPOINTS}
    traced = make_plan(CollectOptions(heap_trace=True), formats, {})
    assert any(tp.startswith("syscalls:") for tp in traced.probes)
    assert "bpf/heap_growth" not in traced.missing

    for args in (CollectOptions(heap_trace=False), CollectOptions()):   # the default
        plan = make_plan(args, formats, {})
        assert not any(tp.startswith("syscalls:") for tp in plan.probes)
        why, remedy = plan.missing["bpf/heap_growth"]
        assert "not traced by default" in why and "--heap-trace" in remedy
    # Everything else is still traced.
    assert set(traced.probes) - set(plan.probes) == {tp for tp in traced.probes if tp.startswith("syscalls:")}



def test_the_cycled_sampler_steps_in_an_eighth_of_the_period_and_is_never_throttled():
    assert program.fault_step(128, False, 100_000) == 128
    assert program.fault_step(128, True, 100_000) == 16
    assert program.fault_step(128, True, 20_000) == 50          # 1M faults/s per CPU: 20,000 overflows
    assert program.fault_step(16, True, 100_000) == 10
    assert program.fault_step(1, True, 100_000) == 1
    assert program.fault_step(10, True, 1_000) == 10            # never above the period
    plan = program.build_plan({}, fault_period=128, fault_carry=True, max_sample_rate=100_000)
    assert "#define SC_FAULT_STEP 16\n" in plan.text and plan.fault_step == 16
    assert "#define SC_FAULT_STEP 128\n" in program.build_plan({}, fault_period=128).text


def test_the_task_user_registers_are_compiled_in_only_where_the_kernel_has_them():
    assert "#define SC_TASK_REGS 1" in program.build_plan(_all(), task_regs=True).text
    plan = program.build_plan(_all())
    assert "#define SC_TASK_REGS 0" in plan.text and not plan.task_regs
    # the program text reads them through one function, compiled out without them
    assert "#if SC_TASK_REGS" in plan.text and "bpf_task_pt_regs(bpf_get_current_task_btf())" in plan.text


def test_the_task_user_registers_need_5_15_and_kernel_btf(tmp_path):
    from snapcollect.collect.bpf import capabilities

    btf = tmp_path / "vmlinux"
    btf.write_bytes(b"\x9f\xeb")
    assert capabilities.task_regs_problem("6.1.0-27-amd64", str(btf)) is None
    assert capabilities.task_regs_problem("5.15.0", str(btf)) is None
    assert "older than 5.15" in capabilities.task_regs_problem("5.10.0-30-amd64", str(btf))
    assert "older than 5.15" in capabilities.task_regs_problem("weird", str(btf))
    assert "no kernel BTF" in capabilities.task_regs_problem("6.12.9", str(tmp_path / "absent"))
    assert capabilities.kernel_version("4.19.0-27-amd64") == (4, 19)
