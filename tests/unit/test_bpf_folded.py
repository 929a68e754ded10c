"""Folded stacks as flamegraph.pl and speedscope read them."""

from __future__ import annotations

import re

import pytest

from bpf_fixtures import text
from snapcollect.collect.bpf.folded import fold, folded_line, render, sanitize_frame
from snapcollect.parsers.base import ParseError
from snapcollect.parsers.bpf_events import parse_folded

# flamegraph.pl's line parsers: a normal line, and the differential form
# "stack count1 count2" it tries first.
FLAMEGRAPH_LINE = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$")
FLAMEGRAPH_DIFF = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)\s+?(\d+(?:\.\d*)?)$")


@pytest.mark.parametrize("raw, clean", [
    ("main", "main"),
    ("a;b", "a:b"),
    ("operator() 2", "operator()_2"),
    ("std::vector<int, std::allocator<int> >::push_back(int const&)",
     "std::vector<int, std::allocator<int> >::push_back(int const&)"),
    ("func1\t 3", "func1_3"),
    ("line\nbreak", "line break"),
    ("", "[unknown]"),
    ("   ", "[unknown]"),
])
def test_sanitize_frame(raw, clean):
    assert sanitize_frame(raw) == clean


def test_lines_with_awkward_names_parse_as_one_stack_and_one_count():
    line = folded_line(["prog 42", "a;b", "run 7"], 1500)
    assert line == "prog_42;a:b;run_7 1500"
    assert not FLAMEGRAPH_DIFF.match(line)
    stack, count = FLAMEGRAPH_LINE.match(line).groups()
    assert stack.split(";") == ["prog_42", "a:b", "run_7"] and count == "1500"


def test_fold_merges_equal_stacks_after_sanitizing_biggest_first():
    merged = fold([(["p", "a;b"], 64), (["p", "a:b"], 128), (["q", "x"], 64)])
    assert merged == [("p;a:b", 192), ("q;x", 64)]
    assert render(merged) == "p;a:b 192\nq;x 64\n"


def test_counts_must_be_whole():
    with pytest.raises(ValueError):
        folded_line(["a"], -1)
    with pytest.raises(ValueError):
        folded_line(["a"], 1.5)


def test_captured_folded_file_reads_back():
    lines = parse_folded(text("fault_stacks.folded"))
    assert ("sc-faulter;__libc_start_call_main;main;sc_fault_outer;sc_fault_touch", 65536) in lines
    assert all(c % 64 == 0 for _, c in lines)     # scaled by the 1-in-64 period
    for stack, count in lines:
        assert FLAMEGRAPH_LINE.match(f"{stack} {count}") and not FLAMEGRAPH_DIFF.match(f"{stack} {count}")


def test_malformed_folded_line_is_a_parse_error():
    with pytest.raises(ParseError, match="line 2"):
        parse_folded("a;b 3\nno-count-here\n")
