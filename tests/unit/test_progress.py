"""Progress on stderr: redrawn on a terminal, a plain line every 10 s elsewhere."""

from __future__ import annotations

import io

from snapcollect.collect.progress import OFF, PLAIN, PLAIN_EVERY_S, TTY, WIDTH, Progress

from collect_fakes import Clock


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(p: Progress, clock: Clock, seconds: int, *, force_every: int = 0) -> None:
    """An update every 0.1 s for ``seconds``, as the runner's loop does."""
    for i in range(seconds * 10):
        clock.t += 0.1
        p.update("sampling", i / 10, 60, 60 - i / 10, i // 10,
                 force=bool(force_every) and i % force_every == 0)


def test_mode_follows_the_stream_and_quiet():
    assert Progress.for_args(False, TtyStream()).mode == TTY
    assert Progress.for_args(False, io.StringIO()).mode == PLAIN
    assert Progress.for_args(True, TtyStream()).mode == OFF
    assert Progress.for_args(True, io.StringIO()).mode == OFF


def test_not_a_terminal_gets_a_plain_line_every_10_s():
    clock, out = Clock(), io.StringIO()
    p = Progress(True, out, mode=PLAIN, clock=clock)
    p.say("snapcollect: 60 s window; Ctrl-C to stop early")
    _feed(p, clock, 35, force_every=7)      # forced redraws within a phase add no lines
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "snapcollect: 60 s window; Ctrl-C to stop early"
    progress = lines[1:]
    assert len(progress) == 1 + int(35 // PLAIN_EVERY_S), progress     # at 0, 10, 20, 30 s
    assert progress[0] == "snapcollect: sampling 0/60 s elapsed, 0 samples, 60 s left"
    assert progress[1].startswith("snapcollect: sampling 10/60 s elapsed, ")
    for line in progress:
        assert "elapsed" in line and "samples" in line and len(line) <= WIDTH
    p.clear()
    assert out.getvalue() == text           # nothing to erase in a log
    clock.t += 1
    p.update("finishing", 35, 60, 5, 35, bound=True, force=True)    # a new phase: at once
    assert out.getvalue()[len(text):] == "snapcollect: finishing 35/60 s elapsed, 35 samples, <=5 s left\n"


def test_terminal_line_is_redrawn_in_place():
    clock, out = Clock(), TtyStream()
    p = Progress(True, out, mode=TTY, clock=clock)
    _feed(p, clock, 2)
    text = out.getvalue()
    assert "\n" not in text and text.count("\r") >= 4          # a few redraws a second
    frames = [f for f in text.split("\r") if f]
    assert all(len(f) == WIDTH for f in frames)
    assert "Ctrl-C: stop+keep" in frames[-1] and "samples" in frames[-1]
    p.clear()
    assert out.getvalue().endswith("\r" + " " * WIDTH + "\r")


def test_quiet_writes_nothing():
    clock, out = Clock(), io.StringIO()
    p = Progress.for_args(True, out)
    p._clock = clock
    p.say("hello")
    _feed(p, clock, 25)
    p.clear()
    assert out.getvalue() == ""


def test_a_closed_pipe_turns_progress_off():
    class Broken(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    clock = Clock()
    p = Progress(True, Broken(), mode=PLAIN, clock=clock)
    _feed(p, clock, 1)
    assert p.mode == OFF and not p.enabled
