"""BPF events on tracepoints: OOM kills, reclaim and compaction stalls,
kswapd wake-ups, sampled page-fault stacks, major faults, brk/mmap growth.

``reader.ReaderSession`` is what the collector's BPF process runs; it
starts ``loader`` (the one process that imports bcc) to compile and
attach the programs of ``memevents.bpf.c``, and reads them without bcc. Only tracepoint fields and BPF helpers
are used (never kernel structs), so headers older than the kernel do.
"""
