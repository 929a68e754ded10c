"""The median of a few figures, for the collector's own cost bookkeeping.

The standard library's ``statistics`` imports ``fractions`` and
``decimal`` (about 0.9 MB of the collector's RSS, whose bound without BPF
is 32 MB) for what is here a sort of three to five floats.
"""

from __future__ import annotations

from typing import Iterable


def median(values: Iterable[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    xs = sorted(values)
    if not xs:
        raise ValueError("median of no values")
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
