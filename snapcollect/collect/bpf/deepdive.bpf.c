/*
 * snapcollect deep dive: the allocations of a few chosen processes.
 *
 * Loaded by deepdive_child.py, only when --pid or --comm is given. What
 * the bcc tools funccount, stackcount -U, memleak and a bpftrace
 * hist(arg0) give for one process, in one object:
 *
 *   uprobes on malloc, calloc, realloc, free, mmap, munmap, brk of the
 *   library that provides them to the process (or its executable):
 *     calls[]         calls per (process, function)
 *     sizes[]         log2 histogram of the sizes asked of malloc
 *     by_stack[]      bytes and calls of malloc/calloc/realloc per user stack
 *     live[]          every allocation not freed yet: size, time, stack
 *     held[]          the bytes and blocks of live[] per stack, read every
 *                     second to see which stacks keep growing
 *   tracepoints, filtered to the processes in targets[]:
 *     exceptions:page_fault_user  every user page fault's stack
 *     syscalls:sys_exit_brk, sys_enter_mmap  heap growth with its stack
 *     sched:sched_process_exit    when a process ended
 *
 * Each uprobe traps into the kernel on every call (about 190 times the
 * cost of a malloc/free pair): they are attached for the chosen
 * processes only (perf's per-process uprobe filter), never host-wide.
 * Only BPF helpers and tracepoint `args->` fields are read: the kernel
 * headers may be older than the running kernel. deepdive_program.py
 * prepends the #defines:
 *
 *   DD_STACK_ENTRIES, DD_LIVE_ENTRIES, DD_KEYS   map sizes
 *   DD_TP_FAULT, DD_TP_BRK, DD_TP_MMAP, DD_TP_EXIT  the tracepoint exists
 */

#include <uapi/linux/ptrace.h>

/* calls[] function slots: deepdive_program.FUNCTIONS, in this order */
#define FN_MALLOC 0
#define FN_CALLOC 1
#define FN_REALLOC 2
#define FN_FREE 3
#define FN_MMAP 4
#define FN_MUNMAP 5
#define FN_BRK 6

/* errors[] slots: deepdive_program.ERROR_SLOTS */
#define ERR_STACK 0        /* a user stack could not be recorded (collision, no room) */
#define ERR_LIVE_FULL 1    /* live[] full: an allocation's outstanding bytes not followed */
#define ERR_KEYS_FULL 2    /* an aggregation map full */
#define ERR_SLOTS 3

/* growth kinds */
#define GROW_BRK 0
#define GROW_MMAP 1

struct fn_key { u32 tgid; u32 fn; };
struct slot_key { u32 tgid; u32 slot; };
struct stack_key { u32 tgid; s32 stack_id; };
struct grow_key { u32 tgid; s32 stack_id; u32 kind; u32 pad; };
struct live_key { u32 tgid; u32 pad; u64 addr; };
struct live_val { u64 size; u64 ts_ns; s32 stack_id; u32 pad; };
struct sum { u64 bytes; u64 calls; };

BPF_HASH(targets, u32, u8, 64);
BPF_HASH(in_flight, u64, u64, 10240);          /* thread -> size asked, entry to return */
BPF_HASH(calls, struct fn_key, u64, DD_KEYS);
BPF_HASH(sizes, struct slot_key, u64, DD_KEYS);
BPF_HASH(by_stack, struct stack_key, struct sum, DD_KEYS);
BPF_HASH(held, struct stack_key, struct sum, DD_KEYS);   /* bytes not freed yet, per stack */
BPF_F_TABLE("hash", struct live_key, struct live_val, live, DD_LIVE_ENTRIES, BPF_F_NO_PREALLOC);
BPF_HASH(faults, struct stack_key, u64, DD_KEYS);
BPF_HASH(growth, struct grow_key, struct sum, DD_KEYS);
BPF_HASH(last_brk, u32, u64, 64);
BPF_HASH(exits, u32, u64, 64);
BPF_STACK_TRACE(stacks, DD_STACK_ENTRIES);
BPF_ARRAY(errors, u64, ERR_SLOTS);

static __always_inline void count_error(int slot)
{
    u64 *n = errors.lookup(&slot);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline int is_target(u32 tgid)
{
    return targets.lookup(&tgid) != 0;
}

static __always_inline void count_call(u32 tgid, u32 fn)
{
    struct fn_key k = {.tgid = tgid, .fn = fn};
    u64 zero = 0, *n = calls.lookup_or_try_init(&k, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        count_error(ERR_KEYS_FULL);
}

static __always_inline int user_stack(void *ctx)
{
    int id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
    if (id < 0)
        count_error(ERR_STACK);
    return id;
}

/* An allocation of `size` asked: remembered until the function returns. */
static __always_inline int alloc_enter(u32 fn, u64 size)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!is_target(tgid))
        return 0;
    count_call(tgid, fn);
    if (fn == FN_MALLOC) {
        /* bcc's log2 slot: floor(log2(size)) + 1, 0 for 0 */
        struct slot_key sk = {.tgid = tgid, .slot = bpf_log2l(size)};
        u64 zero = 0, *n = sizes.lookup_or_try_init(&sk, &zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    in_flight.update(&id, &size);
    return 0;
}

static __always_inline int alloc_return(struct pt_regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    u64 *size = in_flight.lookup(&id);
    if (!size)
        return 0;
    u64 bytes = *size;
    in_flight.delete(&id);
    u64 addr = PT_REGS_RC(ctx);
    if (addr == 0)
        return 0;          /* failed: nothing allocated */
    int stack_id = user_stack(ctx);
    struct stack_key sk = {.tgid = tgid, .stack_id = stack_id};
    struct sum zero = {}, *s = by_stack.lookup_or_try_init(&sk, &zero);
    if (s) {
        __sync_fetch_and_add(&s->bytes, bytes);
        __sync_fetch_and_add(&s->calls, 1);
    } else {
        count_error(ERR_KEYS_FULL);
    }
    struct live_key lk = {.tgid = tgid, .addr = addr};
    struct live_val lv = {.size = bytes, .ts_ns = bpf_ktime_get_ns(), .stack_id = stack_id};
    if (live.update(&lk, &lv) != 0) {
        count_error(ERR_LIVE_FULL);
        return 0;
    }
    struct sum *h = held.lookup_or_try_init(&sk, &zero);
    if (h) {
        __sync_fetch_and_add(&h->bytes, bytes);
        __sync_fetch_and_add(&h->calls, 1);
    }
    return 0;
}

/* A block freed (or reallocated): out of live[] and of its stack's held[]. */
static __always_inline void forget(u32 tgid, u64 addr)
{
    struct live_key lk = {.tgid = tgid, .addr = addr};
    struct live_val *lv = live.lookup(&lk);
    if (!lv)
        return;      /* allocated before the probes, or not followed */
    struct stack_key sk = {.tgid = tgid, .stack_id = lv->stack_id};
    struct sum *h = held.lookup(&sk);
    if (h) {
        __sync_fetch_and_sub(&h->bytes, lv->size);
        __sync_fetch_and_sub(&h->calls, 1);
    }
    live.delete(&lk);
}

int on_malloc(struct pt_regs *ctx)
{
    return alloc_enter(FN_MALLOC, PT_REGS_PARM1(ctx));
}

int on_calloc(struct pt_regs *ctx)
{
    return alloc_enter(FN_CALLOC, PT_REGS_PARM1(ctx) * PT_REGS_PARM2(ctx));
}

int on_realloc(struct pt_regs *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!is_target(tgid))
        return 0;
    /* the old block is gone whatever realloc returns, unless it fails */
    forget(tgid, PT_REGS_PARM1(ctx));
    return alloc_enter(FN_REALLOC, PT_REGS_PARM2(ctx));
}

int on_alloc_return(struct pt_regs *ctx)
{
    return alloc_return(ctx);
}

int on_free(struct pt_regs *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!is_target(tgid))
        return 0;
    count_call(tgid, FN_FREE);
    forget(tgid, PT_REGS_PARM1(ctx));
    return 0;
}

int on_mmap(struct pt_regs *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (is_target(tgid))
        count_call(tgid, FN_MMAP);
    return 0;
}

int on_munmap(struct pt_regs *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (is_target(tgid))
        count_call(tgid, FN_MUNMAP);
    return 0;
}

int on_brk(struct pt_regs *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (is_target(tgid))
        count_call(tgid, FN_BRK);
    return 0;
}

#ifdef DD_TP_FAULT
/* Every user page fault of a chosen process, unsampled. */
TRACEPOINT_PROBE(exceptions, page_fault_user)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!is_target(tgid))
        return 0;
    struct stack_key sk = {.tgid = tgid, .stack_id = user_stack(args)};
    u64 zero = 0, *n = faults.lookup_or_try_init(&sk, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        count_error(ERR_KEYS_FULL);
    return 0;
}
#endif

static __always_inline void grow(void *ctx, u32 tgid, u32 kind, u64 bytes)
{
    struct grow_key gk = {.tgid = tgid, .stack_id = user_stack(ctx), .kind = kind};
    struct sum zero = {}, *s = growth.lookup_or_try_init(&gk, &zero);
    if (s) {
        __sync_fetch_and_add(&s->bytes, bytes);
        __sync_fetch_and_add(&s->calls, 1);
    } else {
        count_error(ERR_KEYS_FULL);
    }
}

#ifdef DD_TP_BRK
/* The break moved: growth is the new break less the last one seen. */
TRACEPOINT_PROBE(syscalls, sys_exit_brk)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!is_target(tgid))
        return 0;
    u64 now = args->ret;
    u64 *last = last_brk.lookup(&tgid);
    if (last && now > *last)
        grow(args, tgid, GROW_BRK, now - *last);
    else if (!last)
        grow(args, tgid, GROW_BRK, 0);     /* the first call: its baseline */
    last_brk.update(&tgid, &now);
    return 0;
}
#endif

#ifdef DD_TP_MMAP
TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!is_target(tgid))
        return 0;
    grow(args, tgid, GROW_MMAP, args->len);
    return 0;
}
#endif

#ifdef DD_TP_EXIT
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid || !is_target(tgid))
        return 0;      /* a thread other than the leader, or not ours */
    u64 ts = bpf_ktime_get_ns();
    exits.update(&tgid, &ts);
    /* the pid may be reused: nothing of another process is recorded */
    targets.delete(&tgid);
    return 0;
}
#endif
