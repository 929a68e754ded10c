"""The incidents made inside a test guest, and the collections around them.

Runs as PID 1's child in a guest booted by tests/vm/driver.py, as root,
with the guest's own Python (3.9 on bullseye: standard library only, no
newer syntax). It writes into the results directory:

- doctor.json: ``snapcollect doctor --json``, run before any collection;
- bundles/incident.tar.zst: one collection around three incidents at
  once: a memcg OOM kill in a cgroup v2 group (memory.max 64 MiB,
  memory.swap.max 0), a group held at its limit by page-cache reads
  (reclaim, no kill), and an allocation preferring NUMA node 1 that
  spills onto node 0;
- bundles/swap.tar.zst: a collection around a group that thrashes its
  swap (memory.max 48 MiB, a 96 MiB working set touched over and over
  once the collector's BPF programs are loaded);
- bundles/deepdive.tar.zst: ``--pid`` on bin/alloc_pattern (built
  static on the host: the guest has no gcc), whose allocations are known:
  30 rounds 100 ms apart of 100 x 24 B, 10 x 3000 B, 1 x 100000 B made
  and freed, and 4096 B leaked by leak_here;
- scenarios.json: what was done (pids, cgroups, exit codes), the guest's
  facts (kernel, cgroup controllers, NUMA nodes, swap) and timings.

Workloads are small because the guest runs under emulation, which
touches fresh memory at about 50 MB/s. They start once the collector's
BPF programs are loaded (bcc's compile takes 10-20 s here), seen as
``anon_inode:bpf-prog`` descriptors in the collector's process tree
(the BPF programs live in a child process of the collector).
"""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))   # the source tree: /src/tests/vm/guest -> /src
CGROOT = "/sys/fs/cgroup"
SWAPFILE = "/var/tmp/snapcollect-vm.swap"
SWAP_MB = 256
INCIDENT_S = 60     # collection windows: long enough for a slow BPF compile and the workloads
SWAP_S = 40
# bcc's compile takes 7-25 s in a guest on a quiet host and 45-125 s on a
# busy one: more than the collector's default --bpf-start-timeout (30 s).
# The scenarios give it what doctor would advise on a slow host.
BPF_START_TIMEOUT_S = 240
BPF_WAIT_S = BPF_START_TIMEOUT_S + 5     # workloads start anyway after this, if BPF never loads

OOM_GROUP = "snapcollect-vm-oom"
LIMIT_GROUP = "snapcollect-vm-limit"
SWAP_GROUP = "snapcollect-vm-swap"

# A process that names itself (comm, as the kernel log and BPF show it),
# enters a cgroup, then runs its body.
PRELUDE = """
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(15, {name!r}.encode(), 0, 0, 0)   # PR_SET_NAME
if {cgroup!r}:
    with open({cgroup!r} + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
"""

ALLOCATE = """
buf = bytearray(b"x" * ({mb} << 20))     # every page written
"""

READ_LOOP = """
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    with open({path!r}, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
"""

TOUCH_LOOP = """
buf = bytearray(b"x" * ({mb} << 20))
while not os.path.exists({go!r}):      # filled (at the limit, partly swapped), idle until told
    time.sleep(0.2)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for i in range(0, len(buf), 4096):   # every page, again and again
        buf[i] = (buf[i] + 1) & 0xFF
"""

T0 = time.monotonic()
RESULTS_DISK = "/dev/vdb"
LOG_PATH = None     # results/run.log, set by main()


def log(msg):
    line = "scenarios %6.1f s: %s" % (time.monotonic() - T0, msg)
    print(line, flush=True)
    if LOG_PATH:
        with open(LOG_PATH, "a") as f:
            f.write(line + "\n")


def checkpoint(results):
    """The results so far onto the results disk, so that a guest kernel that
    panics or locks up in a later step still leaves the earlier steps' results
    (the guest's init writes the disk again at the end)."""
    if not os.path.exists(RESULTS_DISK):
        return
    r = subprocess.run(["tar", "-cf", RESULTS_DISK, "-C", results, "."], stderr=subprocess.PIPE,
                       universal_newlines=True)
    os.sync()
    if r.returncode != 0:
        log("checkpoint: tar exited %d: %s" % (r.returncode, r.stderr.strip()[-200:]))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return "error: %s" % exc


def python(body, name, cgroup=""):
    return [sys.executable, "-c", PRELUDE.format(name=name, cgroup=cgroup) + body]


def snapcollect(*args):
    return [sys.executable, "-m", "snapcollect"] + list(args)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC
    return e


def make_group(name, max_mb, swap_max):
    path = os.path.join(CGROOT, name)
    os.makedirs(path, exist_ok=True)
    write(os.path.join(path, "memory.max"), str(max_mb << 20))
    write(os.path.join(path, "memory.swap.max"), swap_max)
    return path


def setup_swap():
    subprocess.run(["swapoff", SWAPFILE], stderr=subprocess.DEVNULL)
    if os.path.exists(SWAPFILE):
        os.unlink(SWAPFILE)
    subprocess.run(["fallocate", "-l", "%dM" % SWAP_MB, SWAPFILE], check=True)
    os.chmod(SWAPFILE, 0o600)
    subprocess.run(["mkswap", SWAPFILE], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["swapon", SWAPFILE], check=True)


def guest_facts():
    nodes = sorted(d for d in os.listdir("/sys/devices/system/node") if d.startswith("node"))
    return {
        "kernel": os.uname().release,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "cpus": os.cpu_count(),
        "numa_nodes": nodes,
        "node_mem_total_kb": {n: _node_total_kb(n) for n in nodes},
        "cgroup_controllers": read(os.path.join(CGROOT, "cgroup.subtree_control")).split(),
        "psi": os.path.exists("/proc/pressure/memory"),
        "swaps": read("/proc/swaps"),
        "tracefs": os.path.isdir("/sys/kernel/tracing/events"),
        "bpffs": os.path.ismount("/sys/fs/bpf"),
        "cmdline": read("/proc/cmdline").strip(),
    }


def _node_total_kb(node):
    for line in read("/sys/devices/system/node/%s/meminfo" % node).splitlines():
        if "MemTotal:" in line:
            return int(line.split()[-2])
    return None


def descendants(pid):
    """pid and every process below it (the collector loads BPF in a child process)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def bpf_fds(pid):
    return sum(_bpf_fds_of(p) for p in descendants(pid))


def _bpf_fds_of(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:bpf-prog":
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def wait_for_bpf(proc, started):
    """Seconds from the collector's start until it holds a loaded BPF program, or None."""
    while time.monotonic() - started < BPF_WAIT_S and proc.poll() is None:
        if bpf_fds(proc.pid):
            seen = time.monotonic() - started
            time.sleep(2)    # the rest of the programs attach right after the first
            return round(seen, 1)
        time.sleep(0.2)
    return None


# The incident and swap collections keep the page-fault sampler open all
# the time. By default it is opened and closed four times a second, and
# each first open and last close patches kernel text (the static key of
# perf's software events, with int3 breakpoints and IPIs). Under qemu's TCG
# that patching, beside a workload faulting flat out, has ended a guest
# in "Oops: int3"; real CPUs patch text safely. The deep dive keeps the default duty cycle, so that these
# kernels still load and run the cycling sampler and its carry, except on
# trixie's 6.12: there the deep dive's cycle ended the guest with "Oops:
# int3" at that static key's site in do_user_addr_fault in two boots out
# of four on 2026-12-02 (bookworm's 6.1: none in as many). Its doctor step
# still compiles and attaches the cycling sampler's program (the default
# plan), so the 6.12 verifier still checks the carry.
STEADY_SAMPLER = ("--fault-duty", "100")
DEEPDIVE_STEADY_ON = ("trixie",)


def codename():
    """VERSION_CODENAME of /etc/os-release: the guest's Debian release."""
    for line in read("/etc/os-release").splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


# The incident collection also traces brk/mmap (opt-in), so that these
# kernels load the syscall programs and read the task's saved user
# registers (bpf_task_pt_regs) for the SP word of each call.
INCIDENT_OPTIONS = ("--heap-trace",)


def start_collection(name, duration, results, options=()):
    out = os.path.join(results, "bundles", name + ".tar.zst")
    err = open(os.path.join(results, name + ".collect.stderr"), "w")
    proc = subprocess.Popen(snapcollect("collect", "-d", str(duration), "-o", out, "-q",
                                        "--bpf-start-timeout", str(BPF_START_TIMEOUT_S), *STEADY_SAMPLER,
                                        *options),
                            env=env(), cwd=results, stdout=subprocess.PIPE, stderr=err,
                            universal_newlines=True)
    return proc, out, err


def finish_collection(proc, err, started, record):
    out, _ = proc.communicate(timeout=300)
    err.close()
    record["collect_exit"] = proc.returncode
    record["collect_stdout"] = out.strip().splitlines()[-1:] if out.strip() else []
    record["collect_s"] = round(time.monotonic() - started, 1)


def wait_for_usage(cgroup, nbytes, limit_s):
    """Wait until the group's memory.current reaches nbytes (True) or limit_s passes (False)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            if int(read(os.path.join(cgroup, "memory.current"))) >= nbytes:
                return True
        except ValueError:
            pass
        time.sleep(0.2)
    return False


def kill_group(path):
    for pid in read(os.path.join(path, "cgroup.procs")).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def incident(results):
    """One collection around a memcg OOM kill, a group at its limit and a NUMA spill."""
    rec = {"oom_group": OOM_GROUP, "limit_group": LIMIT_GROUP}
    oom_cg = make_group(OOM_GROUP, 64, "0")
    limit_cg = make_group(LIMIT_GROUP, 32, "0")
    cache_file = "/var/tmp/snapcollect-vm.cache-file"
    subprocess.run(["truncate", "-s", "192M", cache_file], check=True)   # reads of a hole fill page cache
    started = time.monotonic()
    proc, bundle, err = start_collection("incident", INCIDENT_S, results, INCIDENT_OPTIONS)
    rec["bpf_loaded_after_s"] = wait_for_bpf(proc, started)
    log("incident: BPF loaded after %s s" % rec["bpf_loaded_after_s"])
    t = time.monotonic()
    reader = subprocess.Popen(python(READ_LOOP.format(seconds=15, path=cache_file), "vm-cache-reader",
                                     limit_cg))
    spill = subprocess.Popen(["numactl", "--preferred=1", "memhog", "-r1", "640m"], stdout=subprocess.DEVNULL)
    time.sleep(2)
    victim = subprocess.Popen(python(ALLOCATE.format(mb=200), "vm-oom-victim", oom_cg),
                              stderr=subprocess.DEVNULL)
    rec["victim_pid"] = victim.pid
    rec["victim_exit"] = victim.wait(timeout=300)
    log("incident: victim %d exited %s" % (victim.pid, rec["victim_exit"]))
    rec["reader_pid"] = reader.pid
    rec["reader_exit"] = reader.wait(timeout=300)
    rec["spill_pid"] = spill.pid
    rec["spill_exit"] = spill.wait(timeout=300)
    rec["workload_s"] = round(time.monotonic() - t, 1)
    log("incident: workloads done in %s s; reader %s, memhog %s"
        % (rec["workload_s"], rec["reader_exit"], rec["spill_exit"]))
    rec["window_left_s"] = round(started + INCIDENT_S - time.monotonic(), 1)
    finish_collection(proc, err, started, rec)
    rec["memory_events"] = {g: read(os.path.join(CGROOT, g, "memory.events")) for g in (OOM_GROUP, LIMIT_GROUP)}
    os.unlink(cache_file)
    rec["bundle"] = os.path.relpath(bundle, results)
    return rec


def swap_thrash(results):
    """One collection around a group whose working set is twice its memory.max."""
    rec = {"swap_group": SWAP_GROUP}
    cg = make_group(SWAP_GROUP, 48, "max")
    # The thrasher fills its 96 MiB (the group at its limit, half of it in
    # swap, as the start snapshot sees it), then waits: it touches its pages
    # over and over only once the BPF programs are loaded, as the incident's
    # workloads do. A guest CPU spinning through swap beside bcc's compile
    # made the compile miss even a generous --bpf-start-timeout on a busy host.
    go = "/run/snapcollect-vm-thrash.go"
    if os.path.exists(go):
        os.unlink(go)
    thrasher = subprocess.Popen(python(TOUCH_LOOP.format(mb=96, seconds=SWAP_S + 60, go=go), "vm-thrasher", cg),
                                stderr=subprocess.DEVNULL)
    rec["thrasher_pid"] = thrasher.pid
    filled = wait_for_usage(cg, 40 << 20, 60)
    log("swap: thrasher filled the group: %s" % filled)
    started = time.monotonic()
    proc, bundle, err = start_collection("swap", SWAP_S, results)
    rec["bpf_loaded_after_s"] = wait_for_bpf(proc, started)
    log("swap: BPF loaded after %s s" % rec["bpf_loaded_after_s"])
    write(go, "go\n")
    finish_collection(proc, err, started, rec)
    rec["thrasher_alive_at_end"] = thrasher.poll() is None
    thrasher.kill()
    thrasher.wait()
    rec["memory_events"] = read(os.path.join(cg, "memory.events"))
    rec["bundle"] = os.path.relpath(bundle, results)
    return rec


DEEPDIVE_S = 20
DEEPDIVE_ROUNDS = 30
DEEPDIVE_PROGRAM = os.path.join(HERE, "bin", "alloc_pattern")


def deep_dive(results):
    """One short collection with --pid on a program whose allocations are known."""
    if not os.path.isfile(DEEPDIVE_PROGRAM):
        return {"error": "no test program on the source disk (the host could not build it with gcc -static)"}
    rec = {"rounds": DEEPDIVE_ROUNDS}
    steady = codename() in DEEPDIVE_STEADY_ON
    rec["fault_sampler_cycled"] = not steady
    prog = subprocess.Popen([DEEPDIVE_PROGRAM, str(DEEPDIVE_ROUNDS), "stay", "100"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, universal_newlines=True)
    try:
        rec["ready"] = prog.stdout.readline().strip() == "ready"
        rec["pid"] = prog.pid
        out = os.path.join(results, "bundles", "deepdive.tar.zst")
        err_path = os.path.join(results, "deepdive.collect.stderr")
        started = time.monotonic()
        with open(err_path, "w") as err:
            # not -q: the collector says on stderr when the probes are attached
            proc = subprocess.Popen(snapcollect("collect", "-d", str(DEEPDIVE_S), "-o", out, "--pid", str(prog.pid),
                                                "--bpf-start-timeout", str(BPF_START_TIMEOUT_S),
                                                *(STEADY_SAMPLER if steady else ())),
                                    env=env(), cwd=results, stdout=subprocess.PIPE, stderr=err,
                                    universal_newlines=True)
        while time.monotonic() - started < BPF_WAIT_S * 2 and proc.poll() is None:
            if "deep dive attached" in read(err_path):
                break
            time.sleep(0.2)
        rec["attached_after_s"] = round(time.monotonic() - started, 1)
        log("deepdive: probes attached after %s s" % rec["attached_after_s"])
        prog.stdin.write("go\n")
        prog.stdin.flush()
        rec["program_done"] = prog.stdout.readline().strip() == "done"
        out_text, _ = proc.communicate(timeout=300 + BPF_WAIT_S * 2)
        rec["collect_exit"] = proc.returncode
        rec["collect_s"] = round(time.monotonic() - started, 1)
        rec["bundle"] = os.path.relpath(out, results)
    finally:
        prog.kill()
        prog.wait()
    return rec


def doctor(results):
    t = time.monotonic()
    # doctor is asked about the collections as they will be run: with the same
    # --bpf-start-timeout.
    r = subprocess.run(snapcollect("doctor", "--json", "--bpf-start-timeout", str(BPF_START_TIMEOUT_S)),
                       env=env(), cwd=results,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    write(os.path.join(results, "doctor.json"), r.stdout)
    write(os.path.join(results, "doctor.stderr"), r.stderr)
    return {"exit": r.returncode, "doctor_s": round(time.monotonic() - t, 1)}


def main(results):
    global LOG_PATH
    os.makedirs(os.path.join(results, "bundles"), exist_ok=True)
    LOG_PATH = os.path.join(results, "run.log")
    report = {"timings": {}}
    steps = [("swap_setup", lambda: setup_swap()),
             ("facts", lambda: guest_facts()),
             ("doctor", lambda: doctor(results)),
             ("incident", lambda: incident(results)),
             ("swap", lambda: swap_thrash(results)),
             ("deepdive", lambda: deep_dive(results))]
    for name, step in steps:
        t = time.monotonic()
        log("%s: start" % name)
        try:
            report[name] = step()
        except Exception as exc:   # one broken step must not lose the others' results
            report[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log("%s: failed: %s" % (name, report[name]["error"]))
        report["timings"][name + "_s"] = round(time.monotonic() - t, 1)
        write(os.path.join(results, "scenarios.json"), json.dumps(report, indent=2, sort_keys=True))
        checkpoint(results)
    for g in (OOM_GROUP, LIMIT_GROUP, SWAP_GROUP):
        path = os.path.join(CGROOT, g)
        if os.path.isdir(path):
            kill_group(path)
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
