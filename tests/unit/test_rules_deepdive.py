"""LEAKING_ALLOCATION_STACK: a --pid process's stack whose unfreed blocks kept growing."""

from findings_helpers import build, dive_target, run

MIB = 1 << 20


def test_a_stack_growing_all_window_with_old_blocks_is_a_leak():
    f, _ = run("LEAKING_ALLOCATION_STACK", build(deepdive=[dive_target(held=[0, MIB, 2 * MIB], outstanding=2 * MIB)]))
    assert f.severity == "INFO" and "leak_here" in f.title and "(4242)" in f.title
    assert f.evidence.values["outstanding_bytes"] == 2 * MIB and "the end of the window" in f.explanation


def test_a_large_leak_warns_and_an_exit_is_said():
    big = 80 * MIB
    f, _ = run("LEAKING_ALLOCATION_STACK", build(deepdive=[dive_target(held=[0, big // 2, big], outstanding=big,
                                                                        exited=True)]))
    assert f.severity == "WARN" and "its exit" in f.explanation


def test_old_blocks_that_did_not_grow_are_no_leak():
    # a cache filled before the window: old, unfreed, flat
    f, skip = run("LEAKING_ALLOCATION_STACK", build(deepdive=[dive_target(held=[MIB, MIB, MIB], outstanding=MIB)]))
    assert f is None and skip is None


def test_growth_that_was_freed_again_is_no_leak():
    f, _ = run("LEAKING_ALLOCATION_STACK", build(deepdive=[dive_target(held=[0, 2 * MIB, MIB], outstanding=MIB)]))
    assert f is None


def test_not_asked_for_it_lacks_nothing_and_asked_for_in_vain_it_is_skipped():
    ds = build()
    assert run("LEAKING_ALLOCATION_STACK", ds) == (None, None)
    ds.manifest["deepdive"] = {"enabled": False, "reason": "none of the processes asked for could be followed"}
    f, skip = run("LEAKING_ALLOCATION_STACK", ds)
    assert f is None and skip == ("needs deepdive (asked for, not collected: none of the processes asked "
                                  "for could be followed)")
