"""Findings: rules over the model of an incident that say what went wrong, with evidence.

``rule`` declares what a rule is; the rules live in ``rules/``, one module
per area; ``engine`` checks each rule's inputs and runs it over the
model (``analysis.model``); ``catalogue`` prints them and generates
docs/findings.md. ``analysis.incident`` runs the engine with the
timeline and the verdict.
"""
