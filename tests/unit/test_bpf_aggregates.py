"""Aggregated BPF artifacts built from kernel map rows (no root needed)."""

from __future__ import annotations

from snapcollect.collect.bpf.aggregates import (FaultRow, HeapRow, fault_documents, heap_document,
                                               majfault_document)

FRAMES = {(10, 1): ["main", "work", "touch"], (10, 2): ["main", "init"], (20, 3): ["[unknown]"]}


def frames(tgid, sid):
    return FRAMES.get((tgid, sid), ["[no user stack]"])


def test_fault_documents_scale_merge_and_count():
    rows = [FaultRow(10, 1, -1, "app", 100), FaultRow(10, 2, -1, "app", 3), FaultRow(20, 3, -1, "app", 2),
            FaultRow(30, -14, -1, "tiny;x", 1)]
    text, meta = fault_documents(rows, 64, False, 16384, {"fault_ustack_other": 1, "sys_stack_other": 9},
                                 frames)
    assert text.splitlines() == ["app;main;work;touch 6400", "app;main;init 192", "app;[unknown] 128",
                                 "tiny:x;[no user stack] 64"]
    assert meta["samples"] == 106 and meta["faults_estimated"] == 106 * 64
    assert meta["stack_errors"] == {"fault_ustack_other": 1}
    assert meta["shallow_stack_samples"] == 6          # stacks of 2 frames or fewer
    assert [(p["pid"], p["samples"], p["faults_estimated"]) for p in meta["processes"]] == [
        (10, 103, 6592), (20, 2, 128), (30, 1, 64)]


def test_kernel_frames_follow_the_user_frames():
    text, _ = fault_documents([FaultRow(10, 1, 5, "app", 1)], 1, True, 16384, {}, frames,
                              lambda sid: ["exc_page_fault", "asm_exc_page_fault"])
    assert text == "app;main;work;touch;asm_exc_page_fault_[k];exc_page_fault_[k] 1\n"


def test_majfault_document_sorted():
    doc = majfault_document([(1, "a", 5), (2, "b", 50)], {"majfault_keys_full": 0})
    assert [r["pid"] for r in doc["processes"]] == [2, 1] and doc["map_full"] == 0


def test_heap_document_groups_per_process_syscall_kind():
    rows = [HeapRow(10, 1, 0, "app", 32, 32 << 20, 0, 1), HeapRow(10, 2, 0, "app", 2, 4096, 8192, 0),
            HeapRow(10, -1000, 2, "app", 5, 3 << 20, 0, 0), HeapRow(20, 3, 1, "other", 1, 1 << 30, 0, 0)]
    doc = heap_document(rows, {"sys_stack_collision": 2}, frames)
    first, brk, filemap = doc["entries"]
    assert (first["pid"], first["syscall"], first["kind"], first["bytes"]) == (20, "mmap", "anon", 1 << 30)
    assert (brk["syscall"], brk["calls"], brk["bytes"], brk["shrink_bytes"], brk["calls_without_baseline"]) == (
        "brk", 34, (32 << 20) + 4096, 8192, 1)
    assert brk["stacks"][0]["frames"] == ["main", "work", "touch"] and "ustack" not in brk["stacks"][0]
    assert filemap["kind"] == "file" and doc["stack_errors"] == {"sys_stack_collision": 2}


def test_fault_document_names_its_sampler_and_its_error():
    _, meta = fault_documents([FaultRow(10, 1, -1, "app", 4)], 128, False, 16384, {}, frames, sampler="perf")
    assert meta["sampler"] == "perf" and "PERF_COUNT_SW_PAGE_FAULTS" in meta["source"]
    assert "sample_period 128" in meta["source"] and "minflt" in meta["faults_counted"]
    assert "sqrt(128*F)" in meta["sampling_error"] and "+-3,577" in meta["sampling_error"]
    _, meta = fault_documents([FaultRow(10, 1, -1, "app", 4)], 1, False, 16384, {}, frames,
                              sampler="tracepoint")
    assert "exceptions:page_fault_user" in meta["source"] and meta["sampling_error"].startswith("exact")
