"""The seams between the collector's parts, declared as typing.Protocol.

Code on one side of a seam depends on the protocol, not on a concrete
class, and never probes the object on the other side (no ``hasattr``,
``getattr(obj, "method", None)``, ``except AttributeError`` or
``inspect`` to find out what it can do): what it may use is what the
protocol declares. Tests stand in for these seams with fakes that
implement the protocol; tests/unit/test_protocols.py compares each
implementation's methods and signatures with the protocol's, so a fake
that drifts from it fails there instead of passing against code that no
longer exists.

- ``BpfWriter``: the bundle writer as the BPF side sees it. The BPF
  reader session (bpf/reader.py) and its parts (bpf/intake.py, bpf/artifacts.py) write through
  it (``wire.PipeWriter`` in the BPF process, a ``BundleWriter`` in the
  live tests); ``BpfHook`` replays the process's calls on the collector's
  writer, and ``wire.apply_call`` accepts exactly the methods declared
  here. ``bundle.writer.BundleWriter`` implements it.
- ``StopState``: the run's stop flag as a wait reads it
  (``signals.StopFlag``: the first signal stops, a second one hurries).
- ``Clock``: a monotonic clock in seconds (``time.monotonic``).
- ``BpfProcessCommand`` and ``MeasureHeadroom``: how ``BpfHook`` and
  ``doctor`` start the BPF process and measure the memory left to the
  collector; plain callables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from snapcollect.collect.headroom import Headroom


class BpfWriter(Protocol):
    """The bundle-writer calls the BPF session makes and the pipe carries."""

    # the manifest so far: the session reads the clock from it
    manifest: dict

    def add_file(self, name: str, data: bytes | str, *, status: str = "ok", reason: str | None = None,
                 **extra: Any) -> None: ...

    def add_missing(self, name: str, status: str, reason: str, **extra: Any) -> None: ...

    def declare_stream(self, name: str, *, status: str = "ok", reason: str | None = None,
                       **extra: Any) -> None: ...

    def add_records(self, name: str, records: list[dict]) -> None: ...

    def merge_manifest(self, key: str, **fields: Any) -> None: ...


class StopState(Protocol):
    """Whether the run was asked to stop (one signal) or to hurry (two)."""

    @property
    def stopped(self) -> bool: ...

    @property
    def hurry(self) -> bool: ...


class Clock(Protocol):
    def __call__(self) -> float: ...


# argv of the BPF process, given the descriptor it writes its messages to
BpfProcessCommand = Callable[[int], list[str]]
# the memory left to the collector before the BPF process may start
MeasureHeadroom = Callable[[], "Headroom"]


def declared_methods(protocol: type) -> tuple[str, ...]:
    """The methods a protocol declares itself, in the order it declares them."""
    return tuple(name for name, value in vars(protocol).items()
                 if callable(value) and (not name.startswith("_") or name == "__call__"))


def declared_properties(protocol: type) -> tuple[str, ...]:
    """Attributes a protocol declares: annotated names and properties."""
    annotated = tuple(vars(protocol).get("__annotations__", {}))
    return annotated + tuple(name for name, value in vars(protocol).items() if isinstance(value, property))
