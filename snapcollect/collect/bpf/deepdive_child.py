"""The deep-dive process: ``python -m snapcollect.collect.bpf.deepdive_child``.

Started by the collector (collect/deepdive_hook.py) only when --pid or
--comm is given, with the BPF process's protocol (wire.py): a ``config``
line on stdin, ``call`` messages replaying bundle-writer calls on the
``--out-fd`` pipe, ``started`` once the probes are on, ``detached``,
``finished``. It imports bcc; the collector never does.

In order: resolve the targets (/proc/PID, /proc/*/comm), compile
deepdive.bpf.c, find for each target the file that gives it malloc
(allocator.py, /proc/PID/maps), measure what one probed call costs (a
calibration process, deepdive_calibrate.py, timed without and with the
probes), attach the uprobes to each target only, then every second read
the bytes each stack still holds and note the targets that exited. At
the finish: detach, read the maps, symbolise (bcc's symbol cache of each
target was filled at attach, so a process that exited keeps its names)
and write ``deepdive/<pid>/...`` (bundle/names.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from snapcollect.bundle import names
from snapcollect.collect.bpf import allocator, wire
from snapcollect.collect.bpf import deepdive_program as P
from snapcollect.collect.bpf.folded import UNKNOWN, fold, render

POLL_S = 0.2
HELD_EVERY_S = 1.0            # how often the bytes held per stack are read
MAX_TARGETS = 16
MAX_HELD_SAMPLES = 3600       # one an interval: an hour's window
MAX_STACKS_OUT = 200          # stacks per list in the JSON artifacts (all of them in the folded files)
CALIBRATION_CALLS = 10000
# The calibration process is killed past this. Starting Python with ctypes
# takes 0.1 s here but over 2 s in an emulated guest on a busy host.
CALIBRATION_LIMIT_S = 6.0
# memleak's -o: allocations younger than this at the end are churn, not leaks
OLDER_THAN_S = 1.0
NS = 1_000_000_000


def _read_text(path: str, limit: int = 1 << 22) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "surrogateescape")
    except OSError:
        return None


def _comm(pid: int) -> str | None:
    text = _read_text(f"/proc/{pid}/comm", 64)
    return text.strip() if text is not None else None


def resolve_targets(pids: list[int], comms: list[str], own: set[int]) -> tuple[list[int], list[dict]]:
    """The processes to follow, and one note per asked pid or name that gave none."""
    found: dict[int, None] = {}
    notes: list[dict] = []
    for pid in pids:
        if pid in own:
            notes.append({"pid": pid, "reason": "one of the collector's own processes"})
        elif _comm(pid) is None:
            notes.append({"pid": pid, "reason": "no such process at the start"})
        else:
            found.setdefault(pid, None)
    for name in comms:
        hits = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in own and _comm(int(entry)) == name[:15]:
                hits.append(int(entry))
        if not hits:
            notes.append({"comm": name, "reason": "no process of that name at the start"})
        for pid in sorted(hits):
            found.setdefault(pid, None)
    chosen = list(found)
    for pid in chosen[MAX_TARGETS:]:
        notes.append({"pid": pid, "reason": f"more than {MAX_TARGETS} processes asked for: left out"})
    return chosen[:MAX_TARGETS], notes


class DeepDive:
    def __init__(self, bcc, writer: wire.PipeWriter, config: dict):
        self.bcc = bcc
        self.w = writer
        opts = config.get("options") or {}
        self.pids = [p for p in opts.get("pids") or [] if type(p) is int and p > 0]
        self.comms = [c for c in opts.get("comms") or [] if isinstance(c, str) and c]
        own = config.get("collector_pid")
        self.own = {os.getpid()} | ({own} if isinstance(own, int) else set())
        clock = config.get("clock") or {}
        self.clock = (float(clock.get("wall", time.time())), float(clock.get("monotonic", time.monotonic())))
        self.bpf = None
        self.targets: dict[int, dict] = {}        # pid -> what target.json says
        self.attached: list[tuple[str, str, int, bool]] = []   # (path, symbol, pid, return probe)
        self.held: dict[int, list[dict]] = {}     # pid -> [{"t", "stacks": {stack_id: [bytes, blocks]}}]
        self.cost: dict = {}
        self._next_held = 0.0

    # -- helpers ---------------------------------------------------------

    def wall(self, mono_s: float) -> float:
        return round(self.clock[0] + (mono_s - self.clock[1]), 6)

    def note(self, **fields) -> None:
        self.w.merge_manifest("deepdive", **fields)

    def defines(self, path: str, symbol: str) -> bool:
        try:
            got = self.bcc.BPF.get_user_functions_and_addresses(path.encode(), f"^{symbol}$".encode())
        except Exception:      # noqa: BLE001 - an unreadable or non-ELF file defines nothing
            return False
        return any(addr for _, addr in got)

    def table(self, name: str):
        return self.bpf.get_table(name)

    # -- start -----------------------------------------------------------

    def start(self) -> bool:
        chosen, notes = resolve_targets(self.pids, self.comms, self.own)
        self.note(asked={"pids": self.pids, "comms": self.comms}, not_followed=notes,
                  older_than_s=OLDER_THAN_S)
        if not chosen:
            self.note(enabled=False, reason="none of the processes asked for could be followed")
            return False
        present = {tp for tp in P.TRACEPOINTS
                   if os.path.exists("/sys/kernel/tracing/events/" + tp.replace(":", "/"))
                   or os.path.exists("/sys/kernel/debug/tracing/events/" + tp.replace(":", "/"))}
        t = time.monotonic()
        try:
            self.bpf = self.bcc.BPF(text=P.build_text(present).encode())
        except Exception as exc:   # noqa: BLE001 - a compile error is a reason, not a crash
            self.note(enabled=False, reason=f"the deep-dive BPF program did not compile: {str(exc)[:200]}")
            return False
        self.note(compile_s=round(time.monotonic() - t, 3),
                  tracepoints_missing=sorted(set(P.TRACEPOINTS) - present))
        self.calibrate()
        for pid in chosen:
            self.follow(pid)
        followed = [p for p, t in self.targets.items() if t["probed"]]
        self.note(enabled=bool(followed), targets=sorted(self.targets),
                  **({} if followed else {"reason": "no malloc could be probed in any process asked for"}))
        return True

    def _choice_for(self, pid: int) -> tuple[allocator.Choice, str | None]:
        maps = _read_text(f"/proc/{pid}/maps") or ""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = None
        root = f"/proc/{pid}/root"
        # the paths of maps are in the process's mount namespace
        choice = allocator.choose(maps, exe, lambda path, sym: self.defines(root + path, sym))
        libc = next((f for f in choice.libraries if allocator.GLIBC.search(f)), None)
        return choice, libc

    def _attach(self, pid: int, choice: allocator.Choice, libc: str | None) -> tuple[list[str], dict]:
        probed: list[str] = []
        missed: dict[str, str] = {}
        root = f"/proc/{pid}/root"
        for fn in P.FUNCTIONS:
            # the system-call wrappers live in the C library even under jemalloc
            path = choice.path if fn in ("malloc", "calloc", "realloc", "free") or not libc else libc
            if path is None:
                missed[fn] = choice.why
                continue
            entry, ret = P.PROBES[fn]
            full = (root + path).encode()
            try:
                self.bpf.attach_uprobe(name=full, sym=fn.encode(), fn_name=entry.encode(), pid=pid)
                self.attached.append((full, fn, pid, False))
                if ret:
                    self.bpf.attach_uretprobe(name=full, sym=fn.encode(), fn_name=ret.encode(), pid=pid)
                    self.attached.append((full, fn, pid, True))
                probed.append(fn)
            except Exception as exc:   # noqa: BLE001 - a missing symbol is recorded, not fatal
                missed[fn] = f"not probed in {os.path.basename(path)}: {str(exc)[:120]}"
        return probed, missed

    def _detach(self, pid: int | None = None) -> None:
        keep = []
        for full, fn, p, ret in self.attached:
            if pid is not None and p != pid:
                keep.append((full, fn, p, ret))
                continue
            try:
                if ret:
                    self.bpf.detach_uretprobe(name=full, sym=fn.encode(), pid=p)
                else:
                    self.bpf.detach_uprobe(name=full, sym=fn.encode(), pid=p)
            except Exception:   # noqa: BLE001 - the process is gone: the kernel dropped it
                pass
        self.attached = keep

    def follow(self, pid: int) -> None:
        comm = _comm(pid)
        choice, libc = self._choice_for(pid)
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = None
        self.table("targets")[self.bcc.table.ct.c_uint(pid)] = self.bcc.table.ct.c_ubyte(1)
        probed, missed = self._attach(pid, choice, libc)
        if not probed:
            del self.table("targets")[self.bcc.table.ct.c_uint(pid)]
        # bcc reads /proc/PID/maps when a process's symbol cache is first
        # used: fill it now, while the process surely lives
        self.bcc.BPF.sym(0, pid)
        self.targets[pid] = {"pid": pid, "comm": comm, "exe": exe, "allocator": choice.allocator,
                             "probed_file": choice.path, "why": choice.why, "probed": probed,
                             "not_probed": missed, "attached_at": self.wall(time.monotonic()),
                             "exited_at": None}

    # -- the calibration ---------------------------------------------------

    def calibrate(self) -> None:
        """What one probed call costs here now: a process timed without and with the probes."""
        t0 = time.monotonic()
        env = dict(os.environ)
        try:
            proc = subprocess.Popen([sys.executable, "-m", "snapcollect.collect.bpf.deepdive_calibrate"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env=env, text=True)
        except OSError as exc:
            self.cost = {"measured": False, "reason": f"the calibration process did not start: {exc}"}
            self.note(calibration=self.cost)
            return
        pid = proc.pid

        def ask(line: str) -> int | None:
            if time.monotonic() - t0 > CALIBRATION_LIMIT_S or proc.poll() is not None:
                return None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            if not wire.readable(proc.stdout.fileno(), CALIBRATION_LIMIT_S - (time.monotonic() - t0)):
                return None
            answer = proc.stdout.readline().strip()
            return int(answer) if answer.isdigit() else None

        def calls() -> int:
            return sum(v.value for k, v in self.table("calls").items() if k.tgid == pid)

        try:
            if not wire.readable(proc.stdout.fileno(), CALIBRATION_LIMIT_S) or proc.stdout.readline().strip() != "ready":
                raise RuntimeError("the calibration process did not get ready")
            plain = []
            for _ in range(2):
                m, f = ask(f"malloc {CALIBRATION_CALLS}"), ask("free")
                if m is None or f is None:
                    raise RuntimeError("the calibration process did not answer")
                plain.append((m, f))
            plain_m, plain_f = min(p[0] for p in plain), min(p[1] for p in plain)
            choice, libc = self._choice_for(pid)
            self.table("targets")[self.bcc.table.ct.c_uint(pid)] = self.bcc.table.ct.c_ubyte(1)
            probed, _ = self._attach(pid, choice, libc)
            if "malloc" not in probed or "free" not in probed:
                raise RuntimeError("malloc and free could not be probed in the calibration process")
            c0 = calls()
            m = ask(f"malloc {CALIBRATION_CALLS}")
            c1 = calls()
            f = ask("free")
            c2 = calls()
            if m is None or f is None or c1 <= c0 or c2 <= c1:
                raise RuntimeError("the probed calibration run did not finish in time")
            two = max(m - plain_m, 0) / (c1 - c0)
            one = max(f - plain_f, 0) / (c2 - c1)
            self.cost = {"measured": True, "calls": CALIBRATION_CALLS,
                         "per_call_ns": {"two_traps": round(two, 1), "one_trap": round(one, 1)},
                         "plain_ns_per_call": round(plain_m / CALIBRATION_CALLS, 1),
                         "probed_ns_per_call": round(m / CALIBRATION_CALLS, 1),
                         "took_s": round(time.monotonic() - t0, 3)}
        except (RuntimeError, OSError, ValueError) as exc:
            self.cost = {"measured": False, "reason": str(exc), "took_s": round(time.monotonic() - t0, 3)}
        finally:
            self._detach(pid)
            try:
                del self.table("targets")[self.bcc.table.ct.c_uint(pid)]
            except KeyError:
                pass
            proc.kill()
            proc.wait()
        self.note(calibration=self.cost)

    # -- the window ----------------------------------------------------------

    def poll(self) -> None:
        now = time.monotonic()
        if now >= self._next_held:
            self._next_held = now + HELD_EVERY_S
            self.sample_held(now)
        for k, v in self.table("exits").items():
            t = self.targets.get(k.value)
            if t is not None and t["exited_at"] is None:
                t["exited_at"] = self.wall(v.value / NS)

    def sample_held(self, now: float) -> None:
        per: dict[int, dict] = {}
        for k, v in self.table("held").items():
            if k.tgid in self.targets and self.targets[k.tgid]["exited_at"] is None:
                per.setdefault(k.tgid, {})[k.stack_id] = [v.bytes, v.calls]
        for pid, stacks in per.items():
            series = self.held.setdefault(pid, [])
            if len(series) < MAX_HELD_SAMPLES:
                series.append({"t": self.wall(now), "stacks": stacks})

    # -- the finish ------------------------------------------------------------

    def pending(self) -> list[str]:
        return [names.deepdive(pid, part) for pid in sorted(self.targets) for part in names.DEEPDIVE_PARTS]

    def frames(self, pid: int, stack_id: int, cache: dict) -> list[str]:
        """Root first; bcc's ``[unknown]`` for an address no mapping explains."""
        if stack_id < 0:
            return ["[stack not recorded]"]
        key = (pid, stack_id)
        if key not in cache:
            try:
                addrs = list(self.table("stacks").walk(stack_id))
            except Exception:   # noqa: BLE001 - a stack id the map no longer has
                addrs = []
            got = []
            for a in addrs:
                try:
                    name = self.bcc.BPF.sym(a, pid).decode("utf-8", "surrogateescape")
                except Exception:   # noqa: BLE001
                    name = UNKNOWN
                got.append(name or UNKNOWN)
            cache[key] = list(reversed(got)) or [UNKNOWN]
        return cache[key]

    def finish(self, on_detached) -> None:
        now = time.monotonic()
        self.poll()
        self._detach()
        on_detached()
        end_ns = int(time.monotonic() * NS)
        calls: dict[int, dict[str, int]] = {}
        for k, v in self.table("calls").items():
            if k.tgid in self.targets and k.fn < len(P.FUNCTIONS):
                calls.setdefault(k.tgid, {})[P.FUNCTIONS[k.fn]] = v.value
        sizes: dict[int, dict[int, int]] = {}
        for k, v in self.table("sizes").items():
            if k.tgid in self.targets:
                sizes.setdefault(k.tgid, {})[k.slot] = v.value
        by_stack: dict[int, list[tuple[int, int, int]]] = {}
        for k, v in self.table("by_stack").items():
            if k.tgid in self.targets:
                by_stack.setdefault(k.tgid, []).append((k.stack_id, v.bytes, v.calls))
        faults: dict[int, list[tuple[int, int]]] = {}
        for k, v in self.table("faults").items():
            if k.tgid in self.targets:
                faults.setdefault(k.tgid, []).append((k.stack_id, v.value))
        growth: dict[int, list[tuple[int, int, int, int]]] = {}
        for k, v in self.table("growth").items():
            if k.tgid in self.targets:
                growth.setdefault(k.tgid, []).append((k.stack_id, k.kind, v.bytes, v.calls))
        outstanding = self._outstanding(end_ns)
        errors = {name: self.table("errors")[self.bcc.table.ct.c_int(i)].value
                  for i, name in enumerate(P.ERROR_SLOTS)}
        cache: dict = {}
        totals: dict[str, int] = {}
        for pid, target in sorted(self.targets.items()):
            c = calls.get(pid, {})
            for fn, n in c.items():
                totals[fn] = totals.get(fn, 0) + n
            target.update(
                calls={fn: c.get(fn, 0) for fn in P.FUNCTIONS},
                malloc_sizes=[{"slot": s, "low": P.log2_bucket(s)[0], "high": P.log2_bucket(s)[1], "count": n}
                              for s, n in sorted(sizes.get(pid, {}).items())],
                overhead_s=P.overhead_s(c, self.cost.get("per_call_ns") or {}),
                window_end=self.wall(now))
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_TARGET), _json(target))
            stacks = by_stack.get(pid, [])
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_ALLOC_BYTES), render(fold(
                [(self.frames(pid, sid, cache), b) for sid, b, _ in stacks if b])).encode())
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_ALLOC_COUNT), render(fold(
                [(self.frames(pid, sid, cache), n) for sid, _, n in stacks if n])).encode())
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_FAULTS), render(fold(
                [(self.frames(pid, sid, cache), n) for sid, n in faults.get(pid, []) if n])).encode())
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_OUTSTANDING),
                            _json(self._outstanding_doc(pid, outstanding.get(pid, {}), cache)))
            rows = sorted(growth.get(pid, []), key=lambda r: (-r[2], -r[3]))
            self.w.add_file(names.deepdive(pid, names.DEEPDIVE_HEAP_GROWTH), _json({"stacks": [
                {"syscall": P.GROWTH_KINDS[kind] if kind < len(P.GROWTH_KINDS) else str(kind),
                 "bytes": b, "calls": n, "frames": self.frames(pid, sid, cache)}
                for sid, kind, b, n in rows[:MAX_STACKS_OUT]]}))
        overhead = P.overhead_s(totals, self.cost.get("per_call_ns") or {})
        self.note(errors=errors, calls=totals, overhead_s=overhead,
                  exited=[p for p, t in self.targets.items() if t["exited_at"] is not None])

    def _outstanding(self, end_ns: int) -> dict[int, dict[int, list]]:
        """pid -> stack id -> [bytes, blocks, oldest ns] of the blocks older than OLDER_THAN_S."""
        exits = {k.value: v.value for k, v in self.table("exits").items()}
        out: dict[int, dict[int, list]] = {}
        live = self.table("live")
        try:
            items = live.items_lookup_batch()
        except Exception:   # noqa: BLE001 - kernels before 5.6 have no batch lookup
            items = live.items()
        for k, v in items:
            if k.tgid not in self.targets:
                continue
            at = exits.get(k.tgid, end_ns)
            if at - v.ts_ns < OLDER_THAN_S * NS:
                continue
            acc = out.setdefault(k.tgid, {}).setdefault(v.stack_id, [0, 0, v.ts_ns])
            acc[0] += v.size
            acc[1] += 1
            acc[2] = min(acc[2], v.ts_ns)
        return out

    def _outstanding_doc(self, pid: int, per_stack: dict[int, list], cache: dict) -> dict:
        rows = sorted(per_stack.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
        series = self.held.get(pid, [])
        # growth of what each stack holds across the window, for the stacks listed
        listed = {sid for sid, _ in rows[:MAX_STACKS_OUT]}
        samples = [{"t": s["t"], "stacks": {str(sid): v for sid, v in s["stacks"].items() if sid in listed}}
                   for s in series]
        return {
            "older_than_s": OLDER_THAN_S,
            "at_exit": self.targets[pid]["exited_at"] is not None,
            "total_bytes": sum(v[0] for v in per_stack.values()),
            "total_blocks": sum(v[1] for v in per_stack.values()),
            "stacks": [{"stack_id": sid, "bytes": b, "blocks": n, "oldest_t": self.wall(t / NS),
                        "frames": self.frames(pid, sid, cache)} for sid, (b, n, t) in rows[:MAX_STACKS_OUT]],
            "held_samples": samples,
        }

    def close(self) -> None:
        if self.bpf is not None:
            self._detach()
            self.bpf.cleanup()


def _json(doc) -> bytes:
    import json

    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def run(stdin_fd: int, out) -> int:
    from snapcollect.collect.bcc_loader import load_bcc

    bcc = load_bcc()    # only here: the collector never imports it

    commands = wire.read_commands(stdin_fd)
    config = next(commands)
    if config is None or config.get("op") != "config":
        return 2
    clock = config.get("clock") or {"wall": time.time(), "monotonic": time.monotonic()}
    writer = wire.PipeWriter(out, clock)
    dive = DeepDive(bcc, writer, config)
    enabled = dive.start()
    writer.send({"op": "started", "enabled": enabled, "pending": dive.pending() if enabled else []})
    while enabled:
        dive.poll()
        if not wire.readable(stdin_fd, POLL_S):
            continue
        msg = next(commands)
        if msg is None or msg.get("op") == "finish":
            break
    if enabled:
        dive.finish(on_detached=lambda: writer.send({"op": "detached"}))
    dive.close()
    writer.send({"op": "finished"})
    return 0


def main(argv=None) -> int:
    return wire.process_main(run, "snapcollect-deepdive", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
