"""Paths of the captured fixtures (see tests/fixtures/README.md)."""

from __future__ import annotations

import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
K618 = os.path.join(ROOT, "kernel-6.18")
BUNDLE = os.path.join(ROOT, "bundles", "memcg-swap-6.18.tar.zst")


def text(name: str) -> str:
    with open(os.path.join(K618, name), encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()
