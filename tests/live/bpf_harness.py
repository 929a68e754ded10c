"""Helpers of the BPF live tests: workloads in C with known function names,
a v1 memory cgroup, and a ReaderSession driven straight into a bundle.

The C programs are compiled at test time with frame pointers so that
their user stacks unwind through the named functions.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

from snapcollect.collect.options import CollectOptions
from snapcollect.bundle.reader import open_bundle
from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect.bpf import capabilities

MEMCG_V1 = "/sys/fs/cgroup/memory"

# Allocates 200 MiB in 1 MiB steps, touching every page: in a 64 MiB memcg
# it is OOM-killed after memcg reclaim fails.
OOM_C = r"""
#include <stdlib.h>
#include <string.h>
int main(void) {
    for (int i = 0; i < 200; i++) {
        char *p = malloc(1 << 20);
        if (!p) return 1;
        memset(p, 0x5a, 1 << 20);
    }
    return 0;
}
"""

# Touches ROUNDS x 64 MiB of fresh anonymous memory from sc_fault_touch,
# called by sc_fault_outer; then prints "done" and waits for a line on
# stdin so that the test can read its /proc/PID/stat before it exits.
FAULT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#define SZ (64L << 20)
__attribute__((noinline)) void sc_fault_touch(volatile char *p, long n) {
    for (long i = 0; i < n; i += 4096) p[i] = 1;
}
__attribute__((noinline)) void sc_fault_outer(long rounds) {
    for (long r = 0; r < rounds; r++) {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(1);
        sc_fault_touch(p, SZ);
        munmap(p, SZ);
    }
}
int main(int argc, char **argv) {
    sc_fault_outer(atol(argv[1]));
    printf("done\n");
    fflush(stdout);
    char buf[8];
    fgets(buf, sizeof buf, stdin);
    return 0;
}
"""

# Faults lightly: 32 fresh pages every 50 ms (about 640 faults a second),
# fewer than the sampler's 1 in 128 per open 0.1 s phase, for argv[1]
# rounds; then waits for a line on stdin (symbols are read while it lives).
LIGHT_FAULT_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#define SZ (32L * 4096)
__attribute__((noinline)) void sc_light_touch(volatile char *p, long n) {
    for (long i = 0; i < n; i += 4096) p[i] = 1;
}
int main(int argc, char **argv) {
    long rounds = atol(argv[1]);
    printf("ready\n");
    fflush(stdout);
    for (long r = 0; r < rounds; r++) {
        char *p = mmap(0, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(1);
        sc_light_touch(p, SZ);
        munmap(p, SZ);
        usleep(50000);
    }
    printf("done\n");
    fflush(stdout);
    char buf[8];
    fgets(buf, sizeof buf, stdin);
    return 0;
}
"""

# Grows its heap by BRK_STEPS x 1 MiB with sbrk() and maps MMAP_COUNT x
# 16 MiB anonymous regions, each from a function of known name, then
# waits for a line on stdin (symbols are read while a process lives).
# libc keeps no frame pointers: a stack through sbrk() stops in libc, and
# the frame-pointer walk skips the function that calls mmap() (the
# wrapper sets up no frame), going on at its caller (sc_map_phase); the
# word at the user SP of the call puts it back where the kernel has
# bpf_task_pt_regs (5.15+).
GROW_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#define BRK_STEPS 32
#define MMAP_COUNT 4
__attribute__((noinline)) void sc_heap_grower(void) {
    for (int i = 0; i < BRK_STEPS; i++) sbrk(1 << 20);
}
__attribute__((noinline)) void sc_heap_phase(void) { sc_heap_grower(); }
__attribute__((noinline)) void *sc_map_grower(void) {
    return mmap(0, 16L << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
__attribute__((noinline)) void sc_map_phase(void) {
    for (int i = 0; i < MMAP_COUNT; i++) sc_map_grower();
}
int main(void) {
    sc_heap_phase();
    sc_map_phase();
    printf("done\n");
    fflush(stdout);
    char buf[8];
    fgets(buf, sizeof buf, stdin);
    return 0;
}
"""


def compile_c(source: str, path: str) -> str:
    src = path + ".c"
    with open(src, "w") as fh:
        fh.write(source)
    subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-o", path, src], check=True)
    return path


def bpf_args(**kw):
    return CollectOptions(**kw)


class DirectSession:
    """A ReaderSession (and its loader) writing into a bundle of its own, polled by hand."""

    def __init__(self, tmpdir: str, **args):
        from snapcollect.collect.bpf.reader import ReaderSession

        self.path = os.path.join(tmpdir, "bpf-test.tar.zst")
        self.writer = BundleWriter(self.path, {"clock": {"wall": time.time(), "monotonic": time.monotonic()}})
        self.session = ReaderSession.start(bpf_args(**args), self.writer, time.monotonic() + 60)

    def poll_while(self, proc: subprocess.Popen, limit_s: float = 120) -> None:
        end = time.monotonic() + limit_s
        while proc.poll() is None and time.monotonic() < end:
            self.session.poll(0.2)
        self.session.poll(0.3)

    def poll_until_line(self, proc: subprocess.Popen, text: str, limit_s: float = 120) -> None:
        """Keep polling, as the collector does, until ``proc`` prints ``text``."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            self.session.poll(0.1)
            ready, _, _ = select.select([proc.stdout], [], [], 0)
            if ready:
                line = proc.stdout.readline()
                if line.strip() == text:
                    return
                if not line:
                    raise AssertionError(f"{proc.args} exited ({proc.wait()}) before printing {text!r}")
        raise AssertionError(f"{proc.args} did not print {text!r} within {limit_s} s")

    def close(self):
        self.session.finish()
        self.writer.close(complete=True)
        return open_bundle(self.path)


class MemcgV1:
    """A v1 memory cgroup with a limit and no swap; removed on exit."""

    def __init__(self, name: str, limit: int = 64 << 20):
        self.path = os.path.join(MEMCG_V1, name)
        self.limit = limit

    def __enter__(self) -> "MemcgV1":
        if os.path.isdir(self.path):
            os.rmdir(self.path)
        os.mkdir(self.path)
        self._write("memory.limit_in_bytes", self.limit)
        if os.path.exists(os.path.join(self.path, "memory.memsw.limit_in_bytes")):
            self._write("memory.memsw.limit_in_bytes", self.limit)
        self._write("memory.swappiness", 0)
        return self

    def _write(self, name: str, value) -> None:
        with open(os.path.join(self.path, name), "w") as fh:
            fh.write(str(value))

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        """Start argv inside the cgroup (joined before exec)."""
        procs = os.path.join(self.path, "cgroup.procs")
        return subprocess.Popen(["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv])

    def __exit__(self, *exc) -> None:
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def kernel_log() -> list[str]:
    """Every message /dev/kmsg still holds, as text."""
    out = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:      # overwritten while reading: skip
                continue
            head, _, text = rec.decode("utf-8", "replace").partition(";")
            out.append(text.split("\n", 1)[0])
    finally:
        os.close(fd)
    return out


def proc_stat_faults(pid: int) -> tuple[int, int]:
    """(minflt, majflt) of /proc/PID/stat (fields 10 and 12)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[7]), int(fields[9])


def bpf_missing() -> str | None:
    """Why BPF cannot run here (no root, no bcc, no tracefs, no headers), or None."""
    if os.geteuid() != 0:
        return "needs root"
    for check in (capabilities.bcc_problem, capabilities.tracefs_problem):
        _val, problem = check()
        if problem:
            return problem.reason
    problem = capabilities.headers_problem()
    return problem.reason if problem else None


def cold_mmap_reader(path) -> str:
    """A Python program that drops ``path`` (16 MiB) from the page cache, reads a byte of each page
    through mmap (one major fault a page), prints ``done`` and waits for a line on stdin."""
    with open(path, "wb") as fh:
        fh.write(os.urandom(1 << 20) * 16)
    os.sync()
    return ("import mmap, os, sys\n"
            f"fd = os.open({str(path)!r}, os.O_RDONLY)\n"
            "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n"
            "m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)\n"
            "m.madvise(mmap.MADV_RANDOM)\n"
            "s = sum(m[i] for i in range(0, len(m), 4096))\n"
            "print('done', flush=True); sys.stdin.readline()\n")


def release_after(session: "DirectSession", proc, live_s: float = 0.0):
    """Keep polling ``live_s`` more (a symbol or maps pass while ``proc`` lives), let it exit
    (one line on its stdin), poll until it is gone, and close the bundle."""
    end = time.monotonic() + live_s
    while time.monotonic() < end:
        session.session.poll(0.2)
    proc.stdin.write("x\n")
    proc.stdin.flush()
    session.poll_while(proc)
    return session.close()

