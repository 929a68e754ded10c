"""The rules catalogue: docs/findings.md is generated from the code; `snapcollect rules` fits 80 columns."""

import os

from snapcollect.analysis.findings import catalogue
from snapcollect.analysis.findings.engine import all_rules
from snapcollect.cli import main

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "findings.md")


def test_docs_findings_md_is_the_generated_catalogue():
    with open(DOC, encoding="utf-8") as fh:
        assert fh.read() == catalogue.markdown(), (
            "docs/findings.md is out of date: run `snapcollect rules --markdown > docs/findings.md`")


def test_markdown_has_every_rule_with_threshold_and_source():
    md = catalogue.markdown()
    for r in all_rules():
        assert f"### {r.key}\n" in md
        assert f"- **Threshold:** {r.threshold}\n" in md
        assert f"- **Source:** {r.source}\n" in md
        assert f"| [{r.key}](#{r.key.lower()}) |" in md


def test_rules_command_prints_the_catalogue_in_80_columns(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines())
    for r in all_rules():
        assert f"{r.key}  [{'/'.join(r.severities)}]" in out
    assert "threshold: PSI memory full avg10 >= 60% held >= 30 s over the series" in out
    assert "heuristic" in out


def test_rules_markdown_flag(capsys):
    assert main(["rules", "--markdown"]) == 0
    assert capsys.readouterr().out == catalogue.markdown()
