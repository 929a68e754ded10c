"""The collector's options: built once from the command line, frozen, and rebuilt in the BPF process."""

from __future__ import annotations

import dataclasses

import pytest

from snapcollect.cli import build_parser
from snapcollect.collect.options import CollectOptions


def test_the_command_line_becomes_one_frozen_object():
    ns = build_parser().parse_args(["collect", "-d", "5", "--top", "3", "--no-bpf", "--heap-trace"])
    opts = CollectOptions.from_namespace(ns)
    assert (opts.duration, opts.top, opts.no_bpf, opts.heap_trace) == (5.0, 3, True, True)
    assert opts.bpf_start_timeout is None and opts.fault_sample is None and opts.quiet is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.duration = 10


def test_every_collect_option_has_a_field():
    """An option added to the CLI but not here would be silently dropped."""
    ns = build_parser().parse_args(["collect"])
    names = {f.name for f in dataclasses.fields(CollectOptions)}
    assert set(vars(ns)) - {"command"} <= names, sorted(set(vars(ns)) - {"command"} - names)


def test_doctor_options_keep_the_collect_defaults():
    opts = CollectOptions.from_namespace(build_parser().parse_args(["doctor", "--json",
                                                                    "--bpf-start-timeout", "90"]))
    assert opts.json is True and opts.bpf_start_timeout == 90.0 and opts.no_bpf is False


def test_the_bpf_process_takes_only_well_typed_bpf_options():
    opts = CollectOptions.from_wire({"heap_trace": True, "fault_sample": 64, "kernel_stacks": "yes",
                                     "no_bpf": 1, "duration": 5, "evil": object()})
    assert opts.heap_trace is True and opts.fault_sample == 64
    assert opts.kernel_stacks is False and opts.no_bpf is False and opts.duration == 60.0
    assert CollectOptions.from_wire(None) == CollectOptions()
    assert CollectOptions.from_wire(["not", "a", "dict"]) == CollectOptions()


def test_but_gives_a_changed_copy():
    a = CollectOptions(top=3)
    b = a.but(top=5, no_bpf=True)
    assert (a.top, a.no_bpf, b.top, b.no_bpf) == (3, False, 5, True)
