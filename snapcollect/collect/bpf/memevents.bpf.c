/*
 * snapcollect memory events: one BPF object, loaded by loader.py.
 *
 * Only tracepoint `args->` fields, BPF helpers and perf software events
 * are used: the kernel headers on many hosts are older than the running
 * kernel, so no kernel struct is ever read. program.py prepends #defines
 * built from the running kernel's tracefs format files:
 *
 *   SC_TP_<cat>__<event>             the tracepoint exists (probe compiled)
 *   SC_F_<cat>__<event>__<field>     the tracepoint has that field
 *   SC_FAULT_PERIOD                  record 1 page fault in N (perf event
 *                                    sample_period, or a per-CPU counter)
 *   SC_FAULT_STEP                    the perf event's own sample_period: N,
 *                                    or N/8 when the sampler is opened and
 *                                    closed (a per-CPU carry makes up N)
 *   SC_KERNEL_STACKS                 also record kernel stacks of faults
 *   SC_STACK_ENTRIES, SC_FAULT_KEYS, SC_REGION_KEYS, SC_LEAF_KEYS  map sizes
 *   SC_SWAP_ENTRIES                  swap slots followed for residency
 *   SC_TASK_REGS                     the kernel has bpf_get_current_task_btf
 *                                    and bpf_task_pt_regs (5.15+, BTF): the
 *                                    task's saved user registers can be read
 *                                    in a syscall or kernel-mode fault
 *
 * Events that are rare and need a time (OOM kills, reclaim and compaction
 * stalls, kswapd wake-ups and runs) go to the perf buffer `events`;
 * frequent ones (page faults, brk/mmap, major faults, shrinker calls, page
 * migrations) are aggregated in maps and read once at the end.
 */

/* struct bpf_perf_event_data: the perf samplers' context (user ABI). */
#include <uapi/linux/bpf_perf_event.h>
/* bcc writes migrate:mm_migrate_pages's args struct from its format file,
 * which names the field's type `enum migrate_mode`: the type must be
 * complete. Only its size matters here (the values are decoded from the
 * print fmt); the kernel header's guard keeps the two from clashing. */
#if defined(SC_TP_migrate__mm_migrate_pages) && !defined(MIGRATE_MODE_H_INCLUDED)
#define MIGRATE_MODE_H_INCLUDED
enum migrate_mode { SC_MIGRATE_ASYNC, SC_MIGRATE_SYNC_LIGHT, SC_MIGRATE_SYNC };
#endif

#define EV_OOM 1
#define EV_RECLAIM 2
#define EV_KSWAPD 3
#define EV_COMPACTION 4
#define EV_TASK 5
#define EV_KSWAPD_RUN 6
#define EV_SHRINK_SLOW 7

/* errors[] slots; decoded by artifacts.py (ERROR_SLOTS) */
#define ERR_FAULT_USTACK_COLLISION 0
#define ERR_FAULT_USTACK_OTHER 1
#define ERR_FAULT_KSTACK 2
#define ERR_FAULT_KEYS_FULL 3
#define ERR_SYS_STACK_COLLISION 4
#define ERR_SYS_STACK_OTHER 5
#define ERR_HEAP_KEYS_FULL 6
#define ERR_START_FULL 7
#define ERR_MAJFAULT_KEYS_FULL 8
#define ERR_SEEN_FULL 9
#define ERR_REGION_KEYS_FULL 10
#define ERR_SHRINK_KEYS_FULL 11
#define ERR_MIGRATE_KEYS_FULL 12
#define ERR_SWAP_KEYS_FULL 13
#define ERR_LEAF_KEYS_FULL 14
#define ERR_HEAP_LEAF_KEYS_FULL 15
#define ERR_THP_KEYS_FULL 16
#define ERR_SLOTS 17

#define SC_EEXIST 17
#define SC_MAP_ANONYMOUS 0x20
#define SC_MAX_ERRNO 4095
#define SC_STACK_NOT_RECORDED (-1000)

/* Header of every perf-buffer event: 40 bytes. */
struct ev_head {
    u32 type;
    u32 tid;        /* kernel "pid" of the current thread */
    u32 tgid;       /* process id */
    u32 cpu;
    u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    char comm[16];  /* current thread */
};

/* oom:mark_victim fires in the task that triggered the OOM kill. */
struct ev_oom {
    struct ev_head h;
    s32 victim_pid;
    u32 uid;
    char victim_comm[16];
    u64 total_vm;   /* kB, as the tracepoint reports them (6.8+) */
    u64 anon_rss;
    u64 file_rss;
    u64 shmem_rss;
    u64 pgtables;
    s32 kstack_id;
    s16 oom_score_adj;
    u16 fields;     /* bit per field the running kernel provides */
};

struct ev_reclaim {
    struct ev_head h;   /* ts_ns: when reclaim began */
    u64 latency_ns;
    u64 nr_reclaimed;
    u64 gfp_flags;
    s32 order;
    u32 kind;           /* 0 direct, 1 memcg */
};

struct ev_kswapd {
    struct ev_head h;
    u64 gfp_flags;
    s32 nid;
    s32 zid;
    s32 order;
    u32 pad;
};

struct ev_compaction {
    struct ev_head h;   /* ts_ns: when compaction began */
    u64 latency_ns;
    s32 status;
    u32 sync;
};

struct ev_task {
    struct ev_head h;
};

BPF_PERF_OUTPUT(events);
BPF_ARRAY(errors, u64, ERR_SLOTS);
BPF_STACK_TRACE(stacks, SC_STACK_ENTRIES);      /* page-fault stacks, 127 deep */
/* brk/mmap user stacks and OOM kernel stacks: many distinct, short
 * stacks (every process maps its libraries), so more buckets of 64
 * frames rather than 127: 16384 x 512 bytes. */
struct sys_stack_t {
    u64 ip[64];
};
BPF_TABLE("stacktrace", int, struct sys_stack_t, sys_stacks, 16384);
/* tgid -> first 8 bytes of comm: a new process (or an exec) is reported
 * once so that user space loads its symbols while it is alive. */
BPF_HASH(seen, u32, u64, 16384);

static __always_inline void count_error(u32 slot)
{
    u64 *v = errors.lookup(&slot);
    if (v)
        __sync_fetch_and_add(v, 1);
}

static __always_inline void fill_head(struct ev_head *h, u32 type)
{
    u64 id = bpf_get_current_pid_tgid();
    h->type = type;
    h->tid = (u32)id;
    h->tgid = id >> 32;
    h->cpu = bpf_get_smp_processor_id();
    h->ts_ns = bpf_ktime_get_ns();
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

static __always_inline void note_task(void *ctx)
{
    struct ev_task ev = {};
    fill_head(&ev.h, EV_TASK);
    u32 tgid = ev.h.tgid;
    u64 c8 = 0;
    __builtin_memcpy(&c8, ev.h.comm, sizeof(c8));
    u64 *old = seen.lookup(&tgid);
    if (old && *old == c8)
        return;
    if (seen.update(&tgid, &c8))
        count_error(ERR_SEEN_FULL);
    events.perf_submit(ctx, &ev, sizeof(ev));
}

/* ---- 1. OOM kills ---------------------------------------------------- */

#ifdef SC_TP_oom__mark_victim
TRACEPOINT_PROBE(oom, mark_victim)
{
    struct ev_oom ev = {};
    fill_head(&ev.h, EV_OOM);
    ev.victim_pid = args->pid;
    /* comm and the sizes arrived in 6.8; older kernels give only pid. */
#ifdef SC_F_oom__mark_victim__comm
    TP_DATA_LOC_READ_STR(ev.victim_comm, comm, sizeof(ev.victim_comm));
    ev.fields |= 1 << 0;
#endif
#ifdef SC_F_oom__mark_victim__total_vm
    ev.total_vm = args->total_vm;
    ev.fields |= 1 << 1;
#endif
#ifdef SC_F_oom__mark_victim__anon_rss
    ev.anon_rss = args->anon_rss;
    ev.fields |= 1 << 2;
#endif
#ifdef SC_F_oom__mark_victim__file_rss
    ev.file_rss = args->file_rss;
    ev.fields |= 1 << 3;
#endif
#ifdef SC_F_oom__mark_victim__shmem_rss
    ev.shmem_rss = args->shmem_rss;
    ev.fields |= 1 << 4;
#endif
#ifdef SC_F_oom__mark_victim__uid
    ev.uid = args->uid;
    ev.fields |= 1 << 5;
#endif
#ifdef SC_F_oom__mark_victim__pgtables
    ev.pgtables = args->pgtables;
    ev.fields |= 1 << 6;
#endif
#ifdef SC_F_oom__mark_victim__oom_score_adj
    ev.oom_score_adj = args->oom_score_adj;
    ev.fields |= 1 << 7;
#endif
    /* The kernel stack tells a memcg OOM (mem_cgroup_out_of_memory) from
     * a global one (__alloc_pages_may_oom -> out_of_memory). */
    ev.kstack_id = sys_stacks.get_stackid(args, 0);
    events.perf_submit(args, &ev, sizeof(ev));
    return 0;
}
#endif

/* ---- 2. reclaim and compaction stalls ------------------------------- */

struct start_t {
    u64 ts_ns;
    u64 gfp_flags;
    s32 order;
    u32 pad;
};
/* key: tid << 1 | kind (0 direct, 1 memcg) */
BPF_HASH(reclaim_start, u64, struct start_t, 10240);
BPF_HASH(compact_start, u32, u64, 10240);

static __always_inline void reclaim_begin(u32 kind, s32 order, u64 gfp)
{
    u64 key = ((bpf_get_current_pid_tgid() & 0xffffffffULL) << 1) | kind;
    struct start_t s = {};
    s.ts_ns = bpf_ktime_get_ns();
    s.gfp_flags = gfp;
    s.order = order;
    if (reclaim_start.update(&key, &s))
        count_error(ERR_START_FULL);
}

static __always_inline void reclaim_end(void *ctx, u32 kind, u64 nr_reclaimed)
{
    u64 key = ((bpf_get_current_pid_tgid() & 0xffffffffULL) << 1) | kind;
    struct start_t *s = reclaim_start.lookup(&key);
    if (!s)
        return;     /* began before we attached */
    struct ev_reclaim ev = {};
    fill_head(&ev.h, EV_RECLAIM);
    ev.latency_ns = ev.h.ts_ns - s->ts_ns;
    ev.h.ts_ns = s->ts_ns;
    ev.gfp_flags = s->gfp_flags;
    ev.order = s->order;
    ev.nr_reclaimed = nr_reclaimed;
    ev.kind = kind;
    reclaim_start.delete(&key);
    events.perf_submit(ctx, &ev, sizeof(ev));
}

#ifdef SC_TP_vmscan__mm_vmscan_direct_reclaim_begin
TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_begin)
{
    s32 order = -1;
    u64 gfp = 0;
#ifdef SC_F_vmscan__mm_vmscan_direct_reclaim_begin__order
    order = args->order;
#endif
#ifdef SC_F_vmscan__mm_vmscan_direct_reclaim_begin__gfp_flags
    gfp = args->gfp_flags;
#endif
    reclaim_begin(0, order, gfp);
    return 0;
}
#endif

#ifdef SC_TP_vmscan__mm_vmscan_direct_reclaim_end
TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_end)
{
    reclaim_end(args, 0, args->nr_reclaimed);
    return 0;
}
#endif

#ifdef SC_TP_vmscan__mm_vmscan_memcg_reclaim_begin
TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_begin)
{
    s32 order = -1;
    u64 gfp = 0;
#ifdef SC_F_vmscan__mm_vmscan_memcg_reclaim_begin__order
    order = args->order;
#endif
#ifdef SC_F_vmscan__mm_vmscan_memcg_reclaim_begin__gfp_flags
    gfp = args->gfp_flags;
#endif
    reclaim_begin(1, order, gfp);
    return 0;
}
#endif

#ifdef SC_TP_vmscan__mm_vmscan_memcg_reclaim_end
TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_end)
{
    reclaim_end(args, 1, args->nr_reclaimed);
    return 0;
}
#endif

#ifdef SC_TP_vmscan__mm_vmscan_wakeup_kswapd
TRACEPOINT_PROBE(vmscan, mm_vmscan_wakeup_kswapd)
{
    struct ev_kswapd ev = {};
    fill_head(&ev.h, EV_KSWAPD);
    ev.nid = args->nid;
    ev.order = args->order;
#ifdef SC_F_vmscan__mm_vmscan_wakeup_kswapd__zid
    ev.zid = args->zid;
#else
    ev.zid = -1;
#endif
#ifdef SC_F_vmscan__mm_vmscan_wakeup_kswapd__gfp_flags
    ev.gfp_flags = args->gfp_flags;
#endif
    events.perf_submit(args, &ev, sizeof(ev));
    return 0;
}
#endif

#ifdef SC_TP_compaction__mm_compaction_begin
TRACEPOINT_PROBE(compaction, mm_compaction_begin)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 ts = bpf_ktime_get_ns();
    if (compact_start.update(&tid, &ts))
        count_error(ERR_START_FULL);
    return 0;
}
#endif

#ifdef SC_TP_compaction__mm_compaction_end
TRACEPOINT_PROBE(compaction, mm_compaction_end)
{
    u32 tid = bpf_get_current_pid_tgid();
    u64 *ts = compact_start.lookup(&tid);
    if (!ts)
        return 0;
    struct ev_compaction ev = {};
    fill_head(&ev.h, EV_COMPACTION);
    ev.latency_ns = ev.h.ts_ns - *ts;
    ev.h.ts_ns = *ts;
#ifdef SC_F_compaction__mm_compaction_end__status
    ev.status = args->status;
#else
    ev.status = -1;
#endif
#ifdef SC_F_compaction__mm_compaction_end__sync
    ev.sync = args->sync;
#endif
    compact_start.delete(&tid);
    events.perf_submit(args, &ev, sizeof(ev));
    return 0;
}
#endif

/* ---- 3. page faults ------------------------------------------------- */

struct fault_key {
    u32 tgid;
    s32 ustack;     /* stack id, or -errno when the stack was not stored */
    s32 kstack;     /* -1 unless SC_KERNEL_STACKS */
    u32 pad;
    char comm[16];
};
BPF_HASH(fault_counts, struct fault_key, u64, SC_FAULT_KEYS);
BPF_PERCPU_ARRAY(fault_tick, u64, 1);
/* Faults of this CPU not yet recorded by the perf sampler: it outlives
 * the perf events, which the duty cycle closes and opens again, so a CPU
 * that takes fewer than N faults in an open phase still gets its sample
 * in a later one. fault_duty.py adds what a closed event had counted
 * since its last overflow (its count mod SC_FAULT_STEP). */
BPF_PERCPU_ARRAY(fault_carry, u64, 1);

/* The user word at the faulting SP, per (process, user stack, kernel
 * stack, word): in a leaf without a frame (gcc omits it in leaves
 * whatever the flags; glibc's memset/memcpy have none) it is the return
 * address into the leaf's caller, which the frame-pointer walk skips; the
 * reader inserts it when it checks out (leaf_frame.py). In a function
 * with a frame it is any local, so it has its own bounded map: a full
 * one costs recovered frames (ERR_LEAF_KEYS_FULL), never fault samples. */
struct leaf_key {
    u32 tgid;
    s32 ustack;
    s32 kstack;
    u32 pad;
    u64 word;
};
BPF_HASH(leaf_words, struct leaf_key, u64, SC_LEAF_KEYS);

static __always_inline void count_leaf_word(u32 tgid, s32 ustack, s32 kstack, u64 sp)
{
    struct leaf_key k;
    __builtin_memset(&k, 0, sizeof(k));
    /* one 8-byte user read per sample; a failed read leaves 0 */
    if (!sp || ustack < 0 || bpf_probe_read_user(&k.word, sizeof(k.word), (void *)sp) || !k.word)
        return;
    k.tgid = tgid;
    k.ustack = ustack;
    k.kstack = kstack;
    u64 *count = leaf_words.lookup(&k);
    if (count) {
        __sync_fetch_and_add(count, 1);
        return;
    }
    u64 one = 1;
    if (leaf_words.update(&k, &one))
        count_error(ERR_LEAF_KEYS_FULL);
}

/* Where faults land: per process, per 2 MiB region of the faulting
 * address (address >> 21) and kind (0: a sampled fault, 1: a major
 * fault). User space names each region from the process's
 * /proc/PID/maps (the file or [heap]/[anon]... it maps). One update per
 * sampled fault and per major fault, nothing on the other faults. */
#define REGION_SAMPLED 0
#define REGION_MAJOR 1
struct region_key {
    u32 tgid;
    u32 kind;
    u64 region;
};
BPF_HASH(fault_regions, struct region_key, u64, SC_REGION_KEYS);

static __always_inline void count_region(u32 tgid, u32 kind, u64 addr)
{
    struct region_key k;
    __builtin_memset(&k, 0, sizeof(k));
    k.tgid = tgid;
    k.kind = kind;
    k.region = addr >> 21;
    u64 *count = fault_regions.lookup(&k);
    if (count) {
        __sync_fetch_and_add(count, 1);
        return;
    }
    u64 one = 1;
    if (fault_regions.update(&k, &one))
        count_error(ERR_REGION_KEYS_FULL);
}

/* One sampled fault: its user stack (and kernel stack) counted per
 * process in the kernel. Called once per SC_FAULT_PERIOD faults. */
static __always_inline int record_fault(void *ctx, u64 addr, u64 sp)
{
    struct fault_key k = {};
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    count_region(k.tgid, REGION_SAMPLED, addr);
    k.ustack = stacks.get_stackid(ctx, BPF_F_USER_STACK);
    if (k.ustack < 0)
        count_error(k.ustack == -SC_EEXIST ? ERR_FAULT_USTACK_COLLISION
                                           : ERR_FAULT_USTACK_OTHER);
#if SC_KERNEL_STACKS
    k.kstack = stacks.get_stackid(ctx, 0);
    if (k.kstack < 0)
        count_error(ERR_FAULT_KSTACK);
#else
    k.kstack = -1;
#endif
    count_leaf_word(k.tgid, k.ustack, k.kstack, sp);
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    u64 *count = fault_counts.lookup(&k);
    if (count) {
        __sync_fetch_and_add(count, 1);
        return 0;
    }
    u64 one = 1;
    if (fault_counts.update(&k, &one))
        count_error(ERR_FAULT_KEYS_FULL);
    note_task(ctx);
    return 0;
}

/* The default sampler: the perf software event page-faults, opened per
 * CPU with sample_period = SC_FAULT_PERIOD. The kernel counts faults in
 * perf's own counter and runs this program only on its overflow, once
 * per N faults (user- and kernel-mode faults of the task, as minflt
 * counts them); ctx is a struct bpf_perf_event_data whose registers are
 * those of the faulting context, so the user stack is the faulting one,
 * and its addr the faulting address (perf_sw_event's). A fault taken in
 * kernel mode (inside a system call) has kernel registers there: its user
 * stack is walked from the task's saved user registers, whose SP word
 * only kernels with bpf_task_pt_regs give (task_user_sp). */
/* The registers of a perf event's context are read as whole 8-byte words
 * at their places in the x86-64 ptrace ABI (struct user_regs_struct: cs is
 * word 17, sp word 19), not through the headers' struct pt_regs: since 6.9
 * (FRED) the kernel's headers make cs a u16 inside a union, so
 * `ctx->regs.cs` is a 2-byte load, which the verifier refuses for this
 * context (invalid bpf_context access off=136 size=2, seen with 6.12's
 * headers). The empty asm keeps clang from narrowing the cs load, of
 * which only the low bits are used. */
#define SC_REGS_WORD_CS 17
#define SC_REGS_WORD_SP 19
/* The user SP the task entered the kernel with, from its saved user
 * registers (bpf_task_pt_regs, 5.15+ with BTF; 0 without): in a system
 * call, or a fault taken inside one, the user stack is walked from these
 * registers, and the word at this SP is the return address into the
 * caller of the frameless syscall wrapper (glibc's mmap, brk, read...).
 * Read as a word at its ptrace-ABI place, like the perf context's. */
static __always_inline u64 task_user_sp(void)
{
#if SC_TASK_REGS
    u64 sp = 0;
    long regs = bpf_task_pt_regs(bpf_get_current_task_btf());
    if (!regs || bpf_probe_read_kernel(&sp, sizeof(sp), (void *)(regs + SC_REGS_WORD_SP * 8)))
        return 0;
    return sp;
#else
    return 0;
#endif
}
static __always_inline u64 sampler_sp(struct bpf_perf_event_data *ctx)
{
    u64 *words = (u64 *)&ctx->regs;
    u64 cs = words[SC_REGS_WORD_CS];
    asm volatile("" : "+r"(cs));
    if ((cs & 3) != 3)
        return task_user_sp();   /* a fault inside a system call */
    return words[SC_REGS_WORD_SP];
}
int on_fault_sample(struct bpf_perf_event_data *ctx)
{
#if SC_FAULT_STEP < SC_FAULT_PERIOD
    /* runs every SC_FAULT_STEP faults; records once per SC_FAULT_PERIOD */
    u32 zero = 0;
    u64 *carry = fault_carry.lookup(&zero);
    if (!carry)
        return 0;
    *carry += SC_FAULT_STEP;
    if (*carry < SC_FAULT_PERIOD)
        return 0;
    *carry -= SC_FAULT_PERIOD;
#endif
    return record_fault(ctx, ctx->addr, sampler_sp(ctx));
}

#ifdef SC_TP_exceptions__page_fault_user
/* The fallback sampler (no perf event, --kernel-stacks, or a period so
 * small that perf would throttle it): runs on every user fault, so it
 * costs a few percent on a fault-heavy workload even when it returns at
 * once; 1 fault in SC_FAULT_PERIOD per CPU goes on to record_fault. */
static __always_inline int fault_due(void)
{
    u32 zero = 0;
    u64 *tick = fault_tick.lookup(&zero);
    if (!tick)
        return 0;
    if (++(*tick) < SC_FAULT_PERIOD)
        return 0;
    *tick = 0;
    return 1;
}

/* The raw tracepoint (4.17+) is tried first: it skips the perf_trace
 * record that a TRACEPOINT_PROBE fills on every fault, which measured
 * 7-9 % of a ~2 us fault here against 3-4 %. Only the address is read
 * (the first argument, TP_PROTO(address, regs, error_code)), and, for
 * the sampled faults only, the user SP from the second: the faulting
 * user pt_regs (x86-64's layout has not changed in years, but it is a
 * kernel struct read: header_layouts.py says so). The classic
 * tracepoint is the fallback on kernels without raw tracepoints. */
RAW_TRACEPOINT_PROBE(page_fault_user)
{
    if (!fault_due())
        return 0;
    u64 sp = 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[1];
    if (regs)
        bpf_probe_read_kernel(&sp, sizeof(sp), &regs->sp);
    return record_fault(ctx, ctx->args[0], sp);
}

/* The classic tracepoint's record has no registers: no SP word. */
TRACEPOINT_PROBE(exceptions, page_fault_user)
{
    if (!fault_due())
        return 0;
    u64 addr = 0;
#ifdef SC_F_exceptions__page_fault_user__address
    addr = args->address;
#endif
    return record_fault(args, addr, 0);
}
#endif

/* Major faults per process: the page-fault samplers fire before the
 * fault is handled, so they cannot tell major from minor; the perf
 * software event major-faults counts exactly what /proc/PID/stat majflt
 * counts. Attached with sample_period 1: major faults are rare (I/O). */
struct proc_key {
    u32 tgid;
    u32 pad;
    char comm[16];
};
BPF_HASH(majfaults, struct proc_key, u64, 10240);

int on_major_fault(struct bpf_perf_event_data *ctx)
{
    struct proc_key k = {};
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    count_region(k.tgid, REGION_MAJOR, ctx->addr);
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    u64 *count = majfaults.lookup(&k);
    if (count) {
        __sync_fetch_and_add(count, 1);
        return 0;
    }
    u64 one = 1;
    if (majfaults.update(&k, &one))
        count_error(ERR_MAJFAULT_KEYS_FULL);
    return 0;
}

/* ---- 4. heap (brk) and mapping (mmap) growth ------------------------ */

#define HEAP_BRK 0
#define HEAP_MMAP_ANON 1
#define HEAP_MMAP_FILE 2

struct heap_key {
    u32 tgid;
    s32 ustack;
    u32 kind;
    u32 pad;
    char comm[16];
};
struct heap_val {
    u64 calls;
    u64 grow_bytes;
    u64 shrink_bytes;
    u64 calls_no_baseline;  /* brk: first call seen for the process */
};
BPF_HASH(heap, struct heap_key, struct heap_val, 16384);
BPF_HASH(brk_last, u32, u64, 16384);           /* tgid -> last break */
struct mmap_start_t {
    u64 len;
    u64 flags;
};
BPF_HASH(mmap_start, u32, struct mmap_start_t, 10240);

/* The word at the user SP of each brk/mmap call, per (process, stack,
 * kind, comm, word: the heap map's key and the word), with the calls and
 * bytes it carried: the syscall wrappers
 * set up no frame, so the walk starts at the wrapper's caller's caller,
 * and this word is the return address into the caller the walk skipped
 * (checked by the reader, leaf_frame.py). Its own bounded map, so a full
 * one costs recovered frames (ERR_HEAP_LEAF_KEYS_FULL), never growth. */
struct heap_leaf_key {
    u32 tgid;
    s32 ustack;
    u32 kind;
    u32 pad;
    u64 word;
    char comm[16];
};
struct heap_leaf_val {
    u64 calls;
    u64 grow_bytes;
};
BPF_HASH(heap_leaf, struct heap_leaf_key, struct heap_leaf_val, SC_LEAF_KEYS);

static __always_inline void count_heap_leaf(u32 kind, s32 ustack, u64 grow)
{
#if SC_TASK_REGS
    struct heap_leaf_key k;
    __builtin_memset(&k, 0, sizeof(k));
    u64 sp = task_user_sp();
    if (!sp || ustack < 0 || bpf_probe_read_user(&k.word, sizeof(k.word), (void *)sp) || !k.word)
        return;
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    k.ustack = ustack;
    k.kind = kind;
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    struct heap_leaf_val *v = heap_leaf.lookup(&k);
    if (!v) {
        struct heap_leaf_val zero = {};
        if (heap_leaf.update(&k, &zero)) {
            count_error(ERR_HEAP_LEAF_KEYS_FULL);
            return;
        }
        v = heap_leaf.lookup(&k);
        if (!v)
            return;
    }
    __sync_fetch_and_add(&v->calls, 1);
    __sync_fetch_and_add(&v->grow_bytes, grow);
#endif
}

static __always_inline struct heap_val *heap_slot(void *ctx, u32 kind, s32 *ustack)
{
    struct heap_key k = {};
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    k.kind = kind;
    if (kind == HEAP_MMAP_FILE) {
        /* Mostly the loader mapping libraries: thousands of distinct,
         * uninteresting stacks that would crowd the stack map. */
        k.ustack = SC_STACK_NOT_RECORDED;
    } else {
        k.ustack = sys_stacks.get_stackid(ctx, BPF_F_USER_STACK);
        if (k.ustack < 0)
            count_error(k.ustack == -SC_EEXIST ? ERR_SYS_STACK_COLLISION : ERR_SYS_STACK_OTHER);
    }
    *ustack = k.ustack;
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    struct heap_val *v = heap.lookup(&k);
    if (v)
        return v;
    struct heap_val zero = {};
    if (heap.update(&k, &zero)) {
        count_error(ERR_HEAP_KEYS_FULL);
        return 0;
    }
    note_task(ctx);
    return heap.lookup(&k);
}

#ifdef SC_TP_syscalls__sys_exit_brk
TRACEPOINT_PROBE(syscalls, sys_exit_brk)
{
    /* brk() returns the new break (the old one on failure); growth is
     * the change from the last break seen for the process. */
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u64 now = (u64)args->ret;
    s32 ustack = SC_STACK_NOT_RECORDED;
    struct heap_val *v = heap_slot(args, HEAP_BRK, &ustack);
    u64 *last = brk_last.lookup(&tgid);
    if (v) {
        u64 grow = 0;
        __sync_fetch_and_add(&v->calls, 1);
        if (!last)
            __sync_fetch_and_add(&v->calls_no_baseline, 1);
        else if (now > *last)
            grow = now - *last;
        else if (now < *last)
            __sync_fetch_and_add(&v->shrink_bytes, *last - now);
        if (grow)
            __sync_fetch_and_add(&v->grow_bytes, grow);
        count_heap_leaf(HEAP_BRK, ustack, grow);
    }
    if (brk_last.update(&tgid, &now))
        count_error(ERR_START_FULL);
    return 0;
}
#endif

/* An exec gives the process a new break (and new symbols); an exit frees
 * its slots. Both are rare, so tracing them costs nothing measurable. */
#ifdef SC_TP_sched__sched_process_exec
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    brk_last.delete(&tgid);
    seen.delete(&tgid);
    return 0;
}
#endif

#ifdef SC_TP_sched__sched_process_exit
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid)
        return 0;   /* a thread other than the leader */
    brk_last.delete(&tgid);
    seen.delete(&tgid);
    return 0;
}
#endif

#if defined(SC_TP_syscalls__sys_enter_mmap) && defined(SC_TP_syscalls__sys_exit_mmap)
TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct mmap_start_t s = {};
    s.len = args->len;
    s.flags = args->flags;
    if (mmap_start.update(&tid, &s))
        count_error(ERR_START_FULL);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct mmap_start_t *s = mmap_start.lookup(&tid);
    if (!s)
        return 0;
    u64 len = s->len;
    u32 kind = (s->flags & SC_MAP_ANONYMOUS) ? HEAP_MMAP_ANON : HEAP_MMAP_FILE;
    mmap_start.delete(&tid);
    if ((u64)args->ret >= (u64)-SC_MAX_ERRNO)
        return 0;   /* failed: nothing was mapped */
    s32 ustack = SC_STACK_NOT_RECORDED;
    struct heap_val *v = heap_slot(args, kind, &ustack);
    if (v) {
        __sync_fetch_and_add(&v->calls, 1);
        __sync_fetch_and_add(&v->grow_bytes, len);
        count_heap_leaf(kind, ustack, len);
    }
    return 0;
}
#endif


/* ---- 5. slab shrinkers ---------------------------------------------- */

/* do_shrink_slab() brackets one shrinker's count+scan with
 * mm_shrink_slab_start/end on the same thread, no sleep in between that
 * could move it to another shrinker. Aggregated per (callback, node); the
 * latency histogram (log2 of us, as bcc's BPF_HISTOGRAM) per callback.
 * Kept minimal for older verifiers: zeroed keys, a NULL check after every
 * lookup, the slot clamped before it is used, no loop. */
#define SHRINK_SLOTS 32
/* One call this slow also goes to the perf buffer with its time, for the
 * timeline: a shrinker call is normally tens of microseconds. */
#define SHRINK_SLOW_NS 10000000ULL

struct ev_shrink_slow {
    struct ev_head h;   /* ts_ns: when the call began */
    u64 shrink;
    u64 latency_ns;
    u64 freed;
    u64 scanned;
    s32 nid;
    u32 pad;
};

struct shrink_start_t {
    u64 ts_ns;
    u64 total_scan;
};
struct shrink_key {
    u64 shrink;     /* the callback (the shrinker's scan_objects) */
    s32 nid;
    u32 pad;
};
struct shrink_val {
    u64 calls;
    u64 total_ns;
    u64 max_ns;
    u64 freed;
    u64 scanned;
};
struct shrink_hist_key {
    u64 shrink;
    u32 slot;
    u32 pad;
};
BPF_HASH(shrink_start, u32, struct shrink_start_t, 10240);
BPF_HASH(shrink_stats, struct shrink_key, struct shrink_val, 2048);
BPF_HASH(shrink_hist, struct shrink_hist_key, u64, 8192);

#if defined(SC_TP_vmscan__mm_shrink_slab_start) && defined(SC_TP_vmscan__mm_shrink_slab_end)
TRACEPOINT_PROBE(vmscan, mm_shrink_slab_start)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct shrink_start_t s;
    __builtin_memset(&s, 0, sizeof(s));
    s.ts_ns = bpf_ktime_get_ns();
    s.total_scan = args->total_scan;
    if (shrink_start.update(&tid, &s))
        count_error(ERR_START_FULL);
    return 0;
}

TRACEPOINT_PROBE(vmscan, mm_shrink_slab_end)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct shrink_start_t *s = shrink_start.lookup(&tid);
    if (!s)
        return 0;   /* began before we attached */
    u64 now = bpf_ktime_get_ns();
    u64 delta = now - s->ts_ns;
    u64 want = s->total_scan;
    shrink_start.delete(&tid);

    /* total_scan at the end is what was left unscanned */
    s64 left = args->total_scan;
    u64 scanned = 0;
    if (left >= 0 && (u64)left < want)
        scanned = want - (u64)left;
    s64 freed = args->retval;

    struct shrink_key k;
    __builtin_memset(&k, 0, sizeof(k));
    k.shrink = (u64)args->shrink;
    k.nid = args->nid;
    struct shrink_val *v = shrink_stats.lookup(&k);
    if (!v) {
        struct shrink_val zero;
        __builtin_memset(&zero, 0, sizeof(zero));
        if (shrink_stats.update(&k, &zero)) {
            count_error(ERR_SHRINK_KEYS_FULL);
            return 0;
        }
        v = shrink_stats.lookup(&k);
        if (!v)
            return 0;
    }
    __sync_fetch_and_add(&v->calls, 1);
    __sync_fetch_and_add(&v->total_ns, delta);
    if (delta > v->max_ns)
        v->max_ns = delta;      /* a race loses a max, never corrupts */
    if (freed > 0)
        __sync_fetch_and_add(&v->freed, (u64)freed);
    __sync_fetch_and_add(&v->scanned, scanned);

    if (delta >= SHRINK_SLOW_NS) {
        struct ev_shrink_slow ev;
        __builtin_memset(&ev, 0, sizeof(ev));
        fill_head(&ev.h, EV_SHRINK_SLOW);
        ev.h.ts_ns = now - delta;
        ev.shrink = k.shrink;
        ev.latency_ns = delta;
        ev.freed = freed > 0 ? (u64)freed : 0;
        ev.scanned = scanned;
        ev.nid = k.nid;
        events.perf_submit(args, &ev, sizeof(ev));
    }

    struct shrink_hist_key hk;
    __builtin_memset(&hk, 0, sizeof(hk));
    hk.shrink = k.shrink;
    u32 slot = bpf_log2l(delta / 1000);
    if (slot >= SHRINK_SLOTS)
        slot = SHRINK_SLOTS - 1;
    hk.slot = slot;
    u64 *count = shrink_hist.lookup(&hk);
    if (count) {
        __sync_fetch_and_add(count, 1);
        return 0;
    }
    u64 one = 1;
    if (shrink_hist.update(&hk, &one))
        count_error(ERR_SHRINK_KEYS_FULL);
    return 0;
}
#endif

/* ---- 6. kswapd runs ------------------------------------------------- */

/* kswapd() traces mm_vmscan_kswapd_wake before each balance_pgdat() and
 * mm_vmscan_kswapd_sleep only when it really goes to sleep, so a run is
 * the first wake after a sleep up to the next sleep; wakes in between
 * are counted in the run. A sleep with no wake seen is a run that was
 * going when we attached: reported with no_start set, no start made up. */
struct kswapd_start_t {
    u64 ts_ns;
    s32 order;
    u32 wakes;
};
BPF_HASH(kswapd_start, u32, struct kswapd_start_t, 1024);

struct ev_kswapd_run {
    struct ev_head h;   /* ts_ns: the first wake (the sleep when no_start) */
    u64 awake_ns;
    s32 nid;
    s32 order;
    u32 wakes;
    u32 no_start;
};

#if defined(SC_TP_vmscan__mm_vmscan_kswapd_wake) && defined(SC_TP_vmscan__mm_vmscan_kswapd_sleep)
TRACEPOINT_PROBE(vmscan, mm_vmscan_kswapd_wake)
{
    u32 nid = args->nid;
    struct kswapd_start_t *s = kswapd_start.lookup(&nid);
    if (s) {
        __sync_fetch_and_add(&s->wakes, 1);
        return 0;
    }
    struct kswapd_start_t n;
    __builtin_memset(&n, 0, sizeof(n));
    n.ts_ns = bpf_ktime_get_ns();
    n.order = args->order;
    n.wakes = 1;
    if (kswapd_start.update(&nid, &n))
        count_error(ERR_START_FULL);
    return 0;
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_kswapd_sleep)
{
    u32 nid = args->nid;
    struct ev_kswapd_run ev;
    __builtin_memset(&ev, 0, sizeof(ev));
    fill_head(&ev.h, EV_KSWAPD_RUN);
    ev.nid = args->nid;
    struct kswapd_start_t *s = kswapd_start.lookup(&nid);
    if (!s) {
        ev.no_start = 1;
        ev.order = -1;
    } else {
        ev.awake_ns = ev.h.ts_ns - s->ts_ns;
        ev.h.ts_ns = s->ts_ns;
        ev.order = s->order;
        ev.wakes = s->wakes;
        kswapd_start.delete(&nid);
    }
    events.perf_submit(args, &ev, sizeof(ev));
    return 0;
}
#endif

/* ---- 7. page migration ---------------------------------------------- */

/* migrate_pages() reports one call's outcome: pages (base-page units
 * for succeeded/failed, THPs apart), the mode and the reason. Counted
 * per (reason, mode) and per (process, reason) of the task that called
 * it (kcompactd, khugepaged, or the allocating task for direct
 * compaction). large_folio_split is 6.18's (earlier: none). */
struct migrate_key {
    u32 reason;
    u32 mode;
};
struct migrate_proc_key {
    u32 tgid;
    u32 reason;
    char comm[16];
};
struct migrate_val {
    u64 calls;
    u64 succeeded;
    u64 failed;
    u64 thp_succeeded;
    u64 thp_failed;
    u64 thp_split;
    u64 large_folio_split;
};
BPF_HASH(migrate_by_reason, struct migrate_key, struct migrate_val, 256);
BPF_HASH(migrate_by_proc, struct migrate_proc_key, struct migrate_val, 4096);

static __always_inline void migrate_add(struct migrate_val *v, u64 ok, u64 bad, u64 thp_ok,
                                        u64 thp_bad, u64 thp_split, u64 lf_split)
{
    __sync_fetch_and_add(&v->calls, 1);
    __sync_fetch_and_add(&v->succeeded, ok);
    __sync_fetch_and_add(&v->failed, bad);
    __sync_fetch_and_add(&v->thp_succeeded, thp_ok);
    __sync_fetch_and_add(&v->thp_failed, thp_bad);
    __sync_fetch_and_add(&v->thp_split, thp_split);
    __sync_fetch_and_add(&v->large_folio_split, lf_split);
}

#ifdef SC_TP_migrate__mm_migrate_pages
TRACEPOINT_PROBE(migrate, mm_migrate_pages)
{
    u64 ok = args->succeeded, bad = args->failed;
    u64 thp_ok = 0, thp_bad = 0, thp_split = 0, lf_split = 0;
#ifdef SC_F_migrate__mm_migrate_pages__thp_succeeded
    thp_ok = args->thp_succeeded;
#endif
#ifdef SC_F_migrate__mm_migrate_pages__thp_failed
    thp_bad = args->thp_failed;
#endif
#ifdef SC_F_migrate__mm_migrate_pages__thp_split
    thp_split = args->thp_split;
#endif
#ifdef SC_F_migrate__mm_migrate_pages__large_folio_split
    lf_split = args->large_folio_split;
#endif
    struct migrate_val zero;
    __builtin_memset(&zero, 0, sizeof(zero));

    struct migrate_key k;
    __builtin_memset(&k, 0, sizeof(k));
    k.reason = args->reason;
    k.mode = args->mode;
    struct migrate_val *v = migrate_by_reason.lookup(&k);
    if (!v) {
        if (migrate_by_reason.update(&k, &zero))
            count_error(ERR_MIGRATE_KEYS_FULL);
        v = migrate_by_reason.lookup(&k);
    }
    if (v)
        migrate_add(v, ok, bad, thp_ok, thp_bad, thp_split, lf_split);

    struct migrate_proc_key pk;
    __builtin_memset(&pk, 0, sizeof(pk));
    pk.tgid = bpf_get_current_pid_tgid() >> 32;
    pk.reason = args->reason;
    bpf_get_current_comm(&pk.comm, sizeof(pk.comm));
    struct migrate_val *pv = migrate_by_proc.lookup(&pk);
    if (!pv) {
        if (migrate_by_proc.update(&pk, &zero))
            count_error(ERR_MIGRATE_KEYS_FULL);
        pv = migrate_by_proc.lookup(&pk);
    }
    if (pv)
        migrate_add(pv, ok, bad, thp_ok, thp_bad, thp_split, lf_split);
    return 0;
}
#endif


/* Swap residency: how long a page stays in swap before it is faulted
 * back. No tracepoint marks either end, so these are kprobes, attached
 * only where the kernel allows them (not on every host): a kretprobe on
 * the swap slot allocation of reclaim (folio_alloc_swap, get_swap_page
 * before 6.0) gives the slot, returned by value (swp_entry_t.val, 0 when
 * swap is full), and a kprobe on the swap cache lookup that every swap-in
 * fault makes first (swap_cache_get_folio, lookup_swap_cache before 6.3)
 * gets the slot as its first argument, by value. Only registers are read
 * (struct pt_regs, the kprobe ABI), never a kernel struct. A slot freed
 * without a swap-in (the process exited) stays until the LRU evicts it;
 * a large folio is followed by its first slot only. */
BPF_TABLE("lru_hash", u64, u64, swap_out_at, SC_SWAP_ENTRIES);
BPF_HISTOGRAM(swap_residency_hist, int, 64);     /* log2 of microseconds */
struct swapin_key {
    u32 tgid;
    u32 pad;
    char comm[16];
};
struct swapin_val {
    u64 count;
    u64 total_us;
    u64 under_1s;
};
BPF_HASH(swapin_by_proc, struct swapin_key, struct swapin_val, 4096);
/* [0] slots allocated (pages swapped out), [1] swap-ins of a followed slot */
BPF_ARRAY(swap_counts, u64, 2);

static __always_inline void swap_count(u32 i)
{
    u64 *c = swap_counts.lookup(&i);
    if (c)
        __sync_fetch_and_add(c, 1);
}

int on_swap_slot_alloc(struct pt_regs *ctx)
{
    u64 slot = PT_REGS_RC(ctx);
    if (slot == 0)
        return 0;
    u64 now = bpf_ktime_get_ns();
    swap_count(0);
    if (swap_out_at.update(&slot, &now))
        count_error(ERR_SWAP_KEYS_FULL);
    return 0;
}

int on_swap_cache_lookup(struct pt_regs *ctx)
{
    u64 slot = PT_REGS_PARM1(ctx);
    u64 *out_at = swap_out_at.lookup(&slot);
    if (!out_at)
        return 0;
    u64 us = (bpf_ktime_get_ns() - *out_at) / 1000;
    swap_out_at.delete(&slot);
    swap_count(1);
    swap_residency_hist.increment(bpf_log2l(us));

    struct swapin_key k;
    __builtin_memset(&k, 0, sizeof(k));
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    struct swapin_val zero;
    __builtin_memset(&zero, 0, sizeof(zero));
    struct swapin_val *v = swapin_by_proc.lookup(&k);
    if (!v) {
        if (swapin_by_proc.update(&k, &zero))
            count_error(ERR_SWAP_KEYS_FULL);
        v = swapin_by_proc.lookup(&k);
    }
    if (v) {
        __sync_fetch_and_add(&v->count, 1);
        __sync_fetch_and_add(&v->total_us, us);
        if (us < 1000000)
            __sync_fetch_and_add(&v->under_1s, 1);
    }
    return 0;
}


/* THP fault fallbacks: a kretprobe on do_huge_pmd_anonymous_page
 * (mm/huge_memory.c, extern, called from create_huge_pmd in mm/memory.c,
 * so never inlined), which runs once per anonymous fault on a PMD range
 * that THP may back, not on every fault. Its return value (vm_fault_t, in
 * the return register) with VM_FAULT_FALLBACK set (0x800, the same bit
 * since 3.8) means the fault went on with 4 KiB pages: no huge page could
 * be allocated, it could not be charged to the memory cgroup, or the range
 * did not fit. 0 is a huge page mapped (or the huge zero page for a read);
 * any other bit (VM_FAULT_OOM, ...) counts as "other". Only the return
 * register is read (struct pt_regs, the kprobe ABI), never a kernel struct.
 * Compiled only when asked for (--thp-fallback). */
#ifdef SC_THP_FALLBACK
#define SC_VM_FAULT_FALLBACK 0x800
struct thp_key {
    u32 tgid;
    u32 pad;
    char comm[16];
};
struct thp_val {
    u64 attempts;
    u64 fallbacks;
    u64 other;
};
BPF_HASH(thp_by_proc, struct thp_key, struct thp_val, SC_THP_KEYS);
/* [0] attempts, [1] fallbacks, [2] other results, host-wide */
BPF_ARRAY(thp_counts, u64, 3);

static __always_inline void thp_count(u32 i)
{
    u64 *c = thp_counts.lookup(&i);
    if (c)
        __sync_fetch_and_add(c, 1);
}

int on_thp_fault_return(struct pt_regs *ctx)
{
    u64 ret = PT_REGS_RC(ctx) & 0xffffffff;      /* vm_fault_t is an unsigned int */
    int fallback = (ret & SC_VM_FAULT_FALLBACK) != 0;
    int other = !fallback && ret != 0;
    thp_count(0);
    if (fallback)
        thp_count(1);
    else if (other)
        thp_count(2);

    struct thp_key k;
    __builtin_memset(&k, 0, sizeof(k));
    k.tgid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&k.comm, sizeof(k.comm));
    struct thp_val zero;
    __builtin_memset(&zero, 0, sizeof(zero));
    struct thp_val *v = thp_by_proc.lookup(&k);
    if (!v) {
        if (thp_by_proc.update(&k, &zero))
            count_error(ERR_THP_KEYS_FULL);
        v = thp_by_proc.lookup(&k);
    }
    if (v) {
        __sync_fetch_and_add(&v->attempts, 1);
        if (fallback)
            __sync_fetch_and_add(&v->fallbacks, 1);
        else if (other)
            __sync_fetch_and_add(&v->other, 1);
    }
    return 0;
}
#endif
