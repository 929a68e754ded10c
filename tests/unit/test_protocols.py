"""Every implementation of a declared seam matches its protocol (collect/protocols.py).

Production code calls what the protocol declares and never probes the
object it is handed; the stand-ins of the tests are checked here against
the same declaration, method by method: the same names, the same
parameters (name, kind, default) and the declared attributes. A fake
that drifts (a renamed keyword, a method production code no longer has)
fails here, not silently in the test that uses it.
"""

from __future__ import annotations

import inspect
import io
import time

import pytest

from snapcollect.bundle.writer import BundleWriter
from snapcollect.collect import protocols
from snapcollect.collect.bpf import wire
from snapcollect.collect.signals import StopFlag

from collect_fakes import Clock, NoStop, RecordingWriter


def _params(fn) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter, annotations aside."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def mismatches(protocol: type, cls: type, instance: object | None = None) -> list[str]:
    """How ``cls`` differs from ``protocol``; empty when it implements it exactly."""
    out = []
    for name in protocols.declared_methods(protocol):
        impl = getattr(cls, name, None)
        if impl is None or not callable(impl):
            out.append(f"{cls.__name__} has no method {name}")
        elif _params(impl) != _params(getattr(protocol, name)):
            out.append(f"{cls.__name__}.{name}{inspect.signature(impl)} is not "
                       f"{protocol.__name__}.{name}{inspect.signature(getattr(protocol, name))}")
    for name in protocols.declared_properties(protocol):
        if instance is not None and not hasattr(instance, name):
            out.append(f"{cls.__name__} instance has no attribute {name}")
        elif instance is None and not isinstance(getattr(cls, name, None), property) \
                and name not in getattr(cls, "__annotations__", {}):
            out.append(f"{cls.__name__} declares no {name}")
    return out


def _bundle_writer(tmp_path) -> BundleWriter:
    return BundleWriter(str(tmp_path / "b.tar.zst"), {"clock": {"wall": time.time(), "monotonic": time.monotonic()}})


@pytest.mark.parametrize("cls, make", [
    (BundleWriter, _bundle_writer),
    (wire.PipeWriter, lambda tmp_path: wire.PipeWriter(io.BytesIO(), {"wall": 0.0, "monotonic": 0.0})),
    (RecordingWriter, lambda tmp_path: RecordingWriter()),
], ids=["BundleWriter", "PipeWriter", "RecordingWriter"])
def test_every_artifact_writer_implements_the_protocol(tmp_path, cls, make):
    writer = make(tmp_path)
    try:
        assert mismatches(protocols.BpfWriter, cls, writer) == []
    finally:
        if isinstance(writer, BundleWriter):
            writer.close(complete=True)


@pytest.mark.parametrize("cls, make", [(StopFlag, StopFlag), (NoStop, NoStop)], ids=["StopFlag", "NoStop"])
def test_every_stop_state_implements_the_protocol(cls, make):
    assert mismatches(protocols.StopState, cls, make()) == []


def test_the_test_clock_implements_the_protocol():
    assert mismatches(protocols.Clock, Clock, Clock()) == []


def test_the_pipe_carries_exactly_the_declared_writer_methods():
    assert set(wire.METHODS) == set(protocols.declared_methods(protocols.BpfWriter))


def test_a_drifted_fake_is_caught():
    class Renamed(RecordingWriter):
        def add_missing(self, name, status, why, **extra):      # "reason" renamed
            pass

    class Lacking:
        manifest: dict = {}

        def add_file(self, name, data, *, status="ok", reason=None, **extra):
            pass

    class NoFlag:
        stopped = False

    assert mismatches(protocols.BpfWriter, Renamed, Renamed()) == [
        "Renamed.add_missing(self, name, status, why, **extra) is not "
        "BpfWriter.add_missing(self, name: 'str', status: 'str', reason: 'str', **extra: 'Any') -> 'None'"]
    assert [m.split(" has no method ")[1] for m in mismatches(protocols.BpfWriter, Lacking, Lacking())] == [
        "add_missing", "declare_stream", "add_records", "merge_manifest"]
    assert mismatches(protocols.StopState, NoFlag, NoFlag()) == ["NoFlag instance has no attribute hurry"]


def test_the_pipe_refuses_a_method_the_protocol_does_not_declare():
    class WithMore(RecordingWriter):
        closed = False

        def close(self, **final):
            self.closed = True

        def add_tick(self, *a, **kw):
            self.closed = True

    w = WithMore()
    for method in ("close", "add_tick", "__init__", "manifest", 7):
        with pytest.raises(ValueError):
            wire.apply_call({"op": "call", "method": method, "args": [], "kw": {}}, w)
    assert not w.closed
    assert wire.apply_call({"op": "call", "method": "declare_stream", "args": ["bpf/x"], "kw": {}}, w) == "bpf/x"
    assert w.streams == {"bpf/x"}
