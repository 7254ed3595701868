"""Classes inside node snapshots keep their import paths.

A snapshot is a pickle: it names each class by module and attribute, and a node restoring an
old snapshot imports exactly those paths. Moving such a class breaks every snapshot written
before the move. So the example topologies run briefly in the in-memory harness, each node's
state is pickled as the runtime pickles it, and every ``doa`` class the pickle names must be in
``STABLE``: a move (or a new doa class in a state) fails here, and needs an alias in the old
module plus a test that old snapshots load through it before it goes into ``STABLE``.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Iterator
from typing import Any

import pytest

from doa.testing import Harness
from doa.topology.loader import load

# Every doa class (module -> names) that a snapshot of the example topologies holds today.
STABLE: dict[str, set[str]] = {
    "doa.kernels.node": {"KernelState"},  # a kernel node's state (fraud's featurize)
    "doa.detector": {"Watch"},  # a detector node's state (fraud's watch_errors)
    "doa.events": {"_rebuild"},  # Event.__reduce__: labels held by a learner (fraud's scorer)
}

STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
              "BINSTRING", "STRING"}
PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
GET_OPS = {"GET", "BINGET", "LONG_BINGET"}


def globals_in(data: bytes, nested: bool = True) -> set[tuple[str, str]]:
    """``(module, name)`` of every GLOBAL and STACK_GLOBAL in the pickle ``data``, and with
    ``nested`` in the pickles inside it as bytes (a learner keeps its model versions pickled)."""
    found: set[tuple[str, str]] = set()
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # what the recent opcodes pushed (strings; None for anything else)
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            found.add((module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = pushed[-2], pushed[-1]
            assert isinstance(module, str) and isinstance(attr, str), (module, attr)
            found.add((module, attr))
            pushed[-2:] = [None]
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif name in PUT_OPS | GET_OPS:
            index = int(str(arg))
            if name in PUT_OPS:
                memo[index] = pushed[-1]
            else:
                pushed.append(memo[index])
        elif name in STRING_OPS:
            pushed.append(arg)
        else:
            if nested and isinstance(arg, bytes | bytearray) and _is_pickle(bytes(arg)):
                found |= globals_in(bytes(arg))
            pushed.append(None)
    return found


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` is a whole pickle (protocol 2 to 5), not other binary data."""
    if data[:1] != b"\x80" or data[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05") \
            or data[-1:] != b".":
        return False
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError:
        return False
    return True


class Recorder(pickle.Unpickler):
    """An external reference: the classes the unpickler itself asks for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.asked: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.asked.add((module, name))
        return super().find_class(module, name)


def items(module: Any, n: int) -> Iterator[tuple[str, Any, int | None]]:
    for item in module.demo_source(n):
        stream, record, *ts = item
        yield stream, record, ts[0] if ts else None


def states(spec: str, n: int, withhold: str | None = None) -> dict[str, bytes]:
    """Each node's state after the first ``n`` records of ``spec``'s demo source, pickled as the
    runtime pickles it. ``withhold``: a stream whose last 20 records stay unpublished (their
    labels then wait in the learner's state)."""
    module, topology = load(spec)
    h = Harness(topology, batch_size=500)
    source = list(items(module, n))
    held = [i for i, (s, _r, _t) in enumerate(source) if s == withhold][-20:]
    for i, (stream, record, ts) in enumerate(source):
        if i not in held:
            h.publish(stream, [record], timestamps=None if ts is None else [ts])
    h.run()
    return {name: pickle.dumps(h.state(name), protocol=5) for name in topology.nodes}


@pytest.fixture(scope="module")
def snapshots() -> dict[str, bytes]:
    fraud = states("topologies/fraud.py", 2500, withhold="transactions")
    sensors = states("topologies/sensors.py", 500)
    return {**{f"fraud/{k}": v for k, v in fraud.items()},
            **{f"sensors/{k}": v for k, v in sensors.items()}}


def test_every_node_was_snapshotted(snapshots: dict[str, bytes]) -> None:
    assert set(snapshots) == {"fraud/featurize", "fraud/scorer", "fraud/watch_errors",
                              "sensors/flag_spikes"}


def test_the_reader_of_globals_agrees_with_the_unpickler(snapshots: dict[str, bytes]) -> None:
    for node, data in snapshots.items():
        recorder = Recorder(data)
        recorder.load()
        assert globals_in(data, nested=False) == recorder.asked, node


def test_pickled_doa_classes_are_the_stable_ones(snapshots: dict[str, bytes]) -> None:
    seen: set[tuple[str, str]] = set()
    for node, data in snapshots.items():
        doa = {(m, n) for m, n in globals_in(data) if m == "doa" or m.startswith("doa.")}
        moved = sorted(f"{m}.{n}" for m, n in doa if n not in STABLE.get(m, set()))
        assert not moved, (f"{node}'s snapshot names {moved}, not in STABLE of "
                           "tests/test_pickle_paths.py: a moved class breaks old snapshots "
                           "(keep an alias at the old path), a new one must be added")
        seen |= doa
    # The topologies really put these classes in their snapshots (else the test proves nothing).
    assert seen == {(m, n) for m, names in STABLE.items() for n in names}


def test_stable_paths_import() -> None:
    for module, names in STABLE.items():
        found = pickle.Unpickler(io.BytesIO(b"")).find_class
        for name in names:
            assert callable(found(module, name)), f"{module}.{name}"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_the_reader_of_globals_on_every_protocol(protocol: int) -> None:
    from collections import OrderedDict

    from doa.events import Event

    event = Event({"a": 1}, stream="s", partition=0, offset=1, timestamp=2)
    data = pickle.dumps([event, event, OrderedDict(e=event), pickle.dumps(event)],
                        protocol=protocol)
    recorder = Recorder(data)
    recorder.load()
    assert globals_in(data, nested=False) == recorder.asked
    assert ("doa.events", "_rebuild") in recorder.asked
    assert ("collections", "OrderedDict") in recorder.asked
