"""The bundle: a tar + zstd archive of raw host data and its manifest.

This package is the only code that knows archive paths. Everything else
asks for an artifact by name (``proc/meminfo@start``, ``series/proc/vmstat``,
``bpf/oom_kill``); see docs/bundle-format.md.

The reader and the writer load on first use (PEP 562): the command line
builds its options from ``bundle.limits`` without importing zstandard, so
a host without it gets the one-line message that names the package.
"""

from snapcollect.bundle.names import FORMAT, FORMAT_VERSION

_LAZY = {"Bundle": "reader", "Sample": "reader", "open_bundle": "reader",
         "BundleWriter": "writer", "DiskFull": "writer"}

__all__ = ["FORMAT", "FORMAT_VERSION", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
