"""Check a report JSON document against docs/report-schema.json.

For every test tier: ``assert_valid_report(doc)`` (a dict, or the path of
a .json file) raises AssertionError naming each place the document breaks
the schema, with its JSON path. The VM tier can call it on the JSON it
renders from a guest's bundle::

    from report_schema import assert_valid_report
    assert_valid_report(doc)

Needs the ``jsonschema`` package (the ``test`` extra).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "report-schema.json")


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    with open(SCHEMA, encoding="utf-8") as fh:
        schema = json.load(fh)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(doc) -> list[str]:
    """Every violation as ``$.path: message`` (empty when the document is valid)."""
    if isinstance(doc, (str, os.PathLike)):
        with open(doc, encoding="utf-8") as fh:
            doc = json.load(fh)
    out = []
    for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        out.append(f"{e.json_path}: {e.message[:300]}")
    return out


def assert_valid_report(doc) -> None:
    errors = schema_errors(doc)
    assert not errors, f"{len(errors)} schema violation(s):\n" + "\n".join(errors[:20])
