"""BPF events through bcc on tracepoints: OOM kills, reclaim and compaction
stalls, kswapd wake-ups, sampled page-fault stacks, major faults, brk/mmap
growth.

``session.BpfSession`` is what the collector's runner drives; the BPF C is
in ``memevents.bpf.c`` beside it. Only tracepoint fields and BPF helpers
are used (never kernel structs), so headers older than the kernel do.
"""
