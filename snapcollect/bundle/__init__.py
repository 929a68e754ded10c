"""The bundle: a tar + zstd archive of raw host data and its manifest.

This package is the only code that knows archive paths. Everything else
asks for an artifact by name (``proc/meminfo@start``, ``series/proc/vmstat``,
``bpf/oom_kill``); see docs/bundle-format.md.
"""

from snapcollect.bundle.names import FORMAT, FORMAT_VERSION
from snapcollect.bundle.reader import Bundle, Sample, open_bundle
from snapcollect.bundle.writer import BundleWriter, DiskFull

__all__ = ["FORMAT", "FORMAT_VERSION", "Bundle", "BundleWriter", "DiskFull", "Sample", "open_bundle"]
