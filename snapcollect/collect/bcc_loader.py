"""Find Debian's bcc bindings (python3-bpfcc) from any Python 3 environment.

The PyPI package called ``bcc`` is an unrelated library; the real bindings
ship only as Debian's ``python3-bpfcc`` under /usr/lib/python3/dist-packages.
They are pure Python over ctypes (libbcc.so), so a virtualenv built on
another Python 3 can load them. Only the ``bcc`` package is loaded from
there: putting all of dist-packages on sys.path would shadow the
virtualenv's own, newer libraries.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

DIST_DIRS = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages")
REMEDY = "install Debian's python3-bpfcc (apt-get install python3-bpfcc bpfcc-tools)"


class BccUnavailable(ImportError):
    """bcc cannot be imported; ``remedy`` says what the user can do."""

    def __init__(self, reason: str, remedy: str = REMEDY):
        super().__init__(reason)
        self.reason = reason
        self.remedy = remedy


def _looks_like_real_bcc(mod: ModuleType) -> bool:
    # A capability check of a third-party module, not a probe of a test's
    # stand-in: PyPI's unrelated "bcc" imports under the same name, and
    # only Debian's bindings have the BPF class and the libbcc handle.
    return hasattr(mod, "BPF") and hasattr(mod, "lib")


def load_bcc() -> ModuleType:
    """Import and return the ``bcc`` module, or raise BccUnavailable."""
    existing = sys.modules.get("bcc")
    if existing is not None and _looks_like_real_bcc(existing):
        return existing
    try:
        import bcc  # noqa: F401  (Debian's python3 finds it directly)

        if _looks_like_real_bcc(bcc):
            return bcc
        sys.modules.pop("bcc", None)  # the unrelated PyPI "bcc": ignore it
    except ImportError:
        pass
    except OSError as exc:  # libbcc.so missing or broken
        raise BccUnavailable(f"bcc is installed but libbcc failed to load: {exc}") from None
    for base in DIST_DIRS:
        init = os.path.join(base, "bcc", "__init__.py")
        if not os.path.exists(init):
            continue
        spec = importlib.util.spec_from_file_location(
            "bcc", init, submodule_search_locations=[os.path.dirname(init)])
        if spec is None or spec.loader is None:
            continue
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bcc"] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001 - any failure means "no usable bcc"
            sys.modules.pop("bcc", None)
            raise BccUnavailable(f"bcc found at {init} but failed to import: {exc}") from None
        return mod
    raise BccUnavailable("the bcc Python bindings are not installed")
