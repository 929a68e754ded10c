"""The caller of a frameless leaf, put back into real page-fault stacks.

gcc omits the frame in a leaf even with -fno-omit-frame-pointer, so the
frame-pointer walk of a fault in ``touch_pages`` (a leaf, called by
``fault_loop``, called by ``main``) gives ``main;touch_pages``. The
sampler records the word at the faulting SP; leaf_frame.py checks it and
the reader inserts ``fault_loop`` (bpf/fault_stacks.folded), counting what
it did in bpf/fault_stacks.json ``leaf_frames``.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import subprocess

import pytest

from bpf_harness import DirectSession, bpf_missing
from snapcollect.collect.bpf import capabilities

pytestmark = [pytest.mark.live, pytest.mark.bpf,
              pytest.mark.skipif(bpf_missing() is not None, reason=f"BPF: {bpf_missing()}"),
              pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")]

# touch_pages writes one byte per page of a fresh 32 MiB mapping, again
# and again for argv[1] seconds; at -O1 it is a leaf without a frame.
# Then prints "done N" and waits for a line (symbols need it alive).
LEAF_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#define SZ (32L << 20)
__attribute__((noinline)) void touch_pages(volatile char *p, long n) {
    for (long i = 0; i < n; i += 4096) p[i] = 1;
}
__attribute__((noinline)) long fault_loop(double seconds) {
    struct timespec t0, t;
    long rounds = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(1);
        touch_pages(p, SZ);
        munmap(p, SZ);
        rounds++;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    return rounds;
}
int main(int argc, char **argv) {
    long rounds = fault_loop(atof(argv[1]));
    printf("done %ld\n", rounds);
    fflush(stdout);
    char buf[8];
    fgets(buf, sizeof buf, stdin);
    return 0;
}
"""


# The same loop with glibc's memset as the leaf (it never sets up a frame):
# the walk gives main;fault_loop;<memset>, fill_buffer is the lost caller.
MEMSET_C = LEAF_C.replace("#include <time.h>", "#include <time.h>\n#include <string.h>").replace(
    "__attribute__((noinline)) void touch_pages(volatile char *p, long n) {\n"
    "    for (long i = 0; i < n; i += 4096) p[i] = 1;\n}",
    "__attribute__((noinline)) void fill_buffer(char *p, long n) { memset(p, 1, n); p[1] = 2; }").replace(
    "touch_pages(p, SZ);", "fill_buffer(p, SZ);")


# The same loop with the faults taken by the kernel, inside read(2) from
# /dev/zero into each fresh mapping: the user stack is walked from the
# task's saved user registers, frame 0 in glibc's read wrapper (no frame),
# so the walk gives main;fault_loop;read and read_into is the lost caller.
READ_C = LEAF_C.replace("#include <time.h>", "#include <time.h>\n#include <fcntl.h>\n#include <unistd.h>").replace(
    "__attribute__((noinline)) void touch_pages(volatile char *p, long n) {\n"
    "    for (long i = 0; i < n; i += 4096) p[i] = 1;\n}",
    "__attribute__((noinline)) long read_into(int fd, char *p, long n) {\n"
    "    long got = read(fd, p, n);\n    p[0] = 2;\n    return got;\n}").replace(
    "touch_pages(p, SZ);", "if (read_into(zero, p, SZ) != SZ) exit(2);").replace(
    "    struct timespec t0, t;", "    struct timespec t0, t;\n    int zero = open(\"/dev/zero\", O_RDONLY);")


def _compile(tmp_path, source: str = LEAF_C) -> str:
    src, exe = tmp_path / "sc-leaf.c", tmp_path / "sc-leaf"
    src.write_text(source)
    subprocess.run(["gcc", "-O1", "-fno-omit-frame-pointer", "-o", str(exe), str(src)], check=True)
    return str(exe)


def _touch_pages_is_frameless(exe: str) -> bool:
    """touch_pages sets up no frame (no push %rbp): what the test is about."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", exe], capture_output=True, text=True).stdout
    body = out.split("<touch_pages>:", 1)[1].split("\n\n", 1)[0]
    return "push" not in body


def _collect(tmp_path, exe: str, exit_first: bool = False, **options):
    s = DirectSession(str(tmp_path), fault_duty=100, **options)
    proc = subprocess.Popen([exe, "3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    end_line = None
    while end_line is None:
        s.session.poll(0.1)
        ready, _, _ = select.select([proc.stdout], [], [], 0)
        if ready:
            line = proc.stdout.readline()
            assert line, f"{exe} exited ({proc.wait()}) before printing done"
            if line.startswith("done"):
                end_line = line
    s.session.poll(1.2)         # one more symbol pass while it lives
    if exit_first:
        # it exits, and the collection goes on long enough for its maps
        # snapshot to be freed: only what was checked while it lived counts
        proc.stdin.write("x\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
        s.session.poll(3.5)
        return s.close()
    bundle = s.close()          # the leaf words are checked at the end too
    proc.stdin.write("x\n")
    proc.stdin.flush()
    assert proc.wait(30) == 0
    return bundle


@pytest.mark.parametrize("options, sampler", [
    ({}, "perf"),                             # the perf sampler: the SP of its user registers
    ({"kernel_stacks": True}, "tracepoint"),  # the raw tracepoint: the SP of the pt_regs it passes
], ids=["perf", "raw-tracepoint"])
def test_the_caller_of_a_frameless_leaf_is_put_back(tmp_path, options, sampler):
    exe = _compile(tmp_path)
    if shutil.which("objdump"):
        assert _touch_pages_is_frameless(exe), "gcc gave touch_pages a frame: the test proves nothing"
    bundle = _collect(tmp_path, exe, **options)
    meta = json.loads(bundle.text("bpf/fault_stacks.json"))
    assert meta["sampler"] == sampler, meta["sampler"]
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-leaf;")]
    # kernel frames (--kernel-stacks) follow the user ones
    mine = [re.sub(r"(;[^;]*_\[k\])+ ", " ", ln) for ln in mine]
    assert any(re.search(r";main;fault_loop;touch_pages \d+$", ln) for ln in mine), mine[:10]
    leaf = meta["leaf_frames"]
    # the walk alone lost fault_loop: every line that has it got it from
    # the SP word (the recovered count), and the rest of the samples in
    # touch_pages show what the walk gave
    assert leaf["recovered"] > 0, leaf
    assert leaf["samples"] == meta["samples"]
    recovered = sum(int(ln.rsplit(" ", 1)[1]) for ln in mine if ";fault_loop;touch_pages " in ln)
    assert recovered > 0
    # most samples of the program are in touch_pages, a user-mode fault
    # with the return address at [SP]: nearly all of them are recovered
    in_leaf = sum(int(ln.rsplit(" ", 1)[1]) for ln in mine if ln.split(" ")[0].endswith(";touch_pages"))
    assert recovered >= 0.9 * in_leaf, (recovered, in_leaf, leaf)
    assert leaf["map_full"] == 0


def test_a_process_that_exited_before_the_end_keeps_its_recovered_frame(tmp_path):
    exe = _compile(tmp_path)
    bundle = _collect(tmp_path, exe, exit_first=True)
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-leaf;")]
    assert any(re.search(r";main;fault_loop;touch_pages \d+$", ln) for ln in mine), mine[:10]
    leaf = json.loads(bundle.text("bpf/fault_stacks.json"))["leaf_frames"]
    assert leaf["recovered"] > 0, leaf


def test_the_caller_of_glibcs_memset_is_put_back(tmp_path):
    assert "fill_buffer(p, SZ);" in MEMSET_C and "touch_pages" not in MEMSET_C
    bundle = _collect(tmp_path, _compile(tmp_path, MEMSET_C))
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-leaf;")]
    assert any(re.search(r";main;fault_loop;fill_buffer;[\w.]*memset[\w.]* \d+$", ln) for ln in mine), mine[:10]
    assert json.loads(bundle.text("bpf/fault_stacks.json"))["leaf_frames"]["recovered"] > 0


@pytest.mark.skipif(capabilities.task_regs_problem() is not None,
                    reason=f"task user registers: {capabilities.task_regs_problem()}")
def test_the_caller_of_a_system_call_that_faults_in_the_kernel_is_put_back(tmp_path):
    assert "read_into(zero, p, SZ)" in READ_C and "touch_pages" not in READ_C
    bundle = _collect(tmp_path, _compile(tmp_path, READ_C))
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-leaf;")]
    # kernel-mode faults: the perf sampler's registers are the kernel's, the
    # SP word comes from the task's saved user registers
    assert any(re.search(r";main;fault_loop;read_into;(__libc_)?read \d+$", ln) for ln in mine), mine[:10]
    in_read = sum(int(ln.rsplit(" ", 1)[1]) for ln in mine if re.search(r";(__libc_)?read \d+$", ln))
    recovered = sum(int(ln.rsplit(" ", 1)[1]) for ln in mine if ";read_into;" in ln)
    assert recovered >= 0.9 * in_read, (recovered, in_read, mine[:10])


def test_without_the_sp_word_the_walk_gives_main_then_the_leaf(tmp_path, monkeypatch):
    """The same program, the SP words dropped before the check: the walk's
    own stack skips fault_loop. This is what the first test repairs."""
    from snapcollect.collect.bpf import artifacts

    monkeypatch.setattr(artifacts.ArtifactWriter, "fault_leaf",
                        lambda self, deadline: (lambda tgid, ustack, kstack: []))
    exe = _compile(tmp_path)
    bundle = _collect(tmp_path, exe)
    mine = [ln for ln in bundle.text("bpf/fault_stacks.folded").splitlines() if ln.startswith("sc-leaf;")]
    assert any(re.search(r";main;touch_pages \d+$", ln) for ln in mine), mine[:10]
    assert not any(";fault_loop;touch_pages" in ln for ln in mine), mine[:10]
    leaf = json.loads(bundle.text("bpf/fault_stacks.json"))["leaf_frames"]
    assert leaf["recovered"] == 0 and leaf["no_word"] == leaf["samples"], leaf
