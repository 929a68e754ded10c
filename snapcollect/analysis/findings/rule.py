"""What a rule is: its declaration, what it returns when it fires, how it is registered.

A rule is a pure function ``Model -> Hit | None`` (``analysis.model``)
registered with ``@rule(...)``. The declaration carries everything the
catalogue shows (key, severities, what it detects, threshold and where
that number comes from) and the wording of the finding, as templates
filled from the hit's facts, apart from the logic (the way insights-core
keeps a rule's text in a template keyed by the rule). Each declared input
is a group of artifact names of which any one will do; ``engine`` checks
them before the rule runs.

Rule modules import this module only; ``engine`` imports the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from snapcollect.analysis.results import SEVERITIES


@dataclass
class Hit:
    """What a rule returns when it fires: severity and the evidence."""

    severity: str
    facts: dict[str, Any]                  # fills the templates; kept as evidence values
    artifacts: list[str]
    time_range: tuple[float, float] | None
    section: str | None = None             # overrides the rule's default section


@dataclass(frozen=True)
class Rule:
    key: str
    area: str
    severities: tuple[str, ...]
    detects: str
    title: str              # template over the hit's facts
    explanation: str        # template: plain words and what to do next
    threshold: str
    source: str             # a published default, or "heuristic" (+ what it is modelled on)
    needs: tuple[tuple[str, ...], ...]
    section: str
    func: Callable[[Any], Hit | None]   # Model -> Hit | None = field(compare=False, repr=False)


class SkipRule(Exception):
    """Raised by a rule whose input exists but cannot answer (e.g. no 'full' PSI line)."""


REGISTRY: list[Rule] = []


def rule(*, key: str, area: str, severities: tuple[str, ...], detects: str, title: str,
         explanation: str, threshold: str, source: str, needs: list[tuple[str, ...] | str],
         section: str):
    """Register a rule. ``needs``: artifact names, or tuples of alternatives."""
    if not key.replace("_", "").isalnum() or key.upper() != key:
        raise ValueError(f"rule key must be UPPER_SNAKE: {key}")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"{key}: unknown severities {bad}")

    def deco(func):
        groups = tuple((n,) if isinstance(n, str) else tuple(n) for n in needs)
        r = Rule(key, area, tuple(severities), detects, title, explanation, threshold, source,
                 groups, section, func)
        if any(x.key == key for x in REGISTRY):
            raise ValueError(f"rule {key} registered twice")
        REGISTRY.append(r)
        func.rule = r
        return func
    return deco
