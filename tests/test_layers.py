"""The house stays walkable: no import cycles, and no import from a lower layer to a higher one.

Imports anywhere in a module count (inside functions too: they are real dependencies), except
inside ``if TYPE_CHECKING:``. The graph comes from ``tests/import_graph.py``; run it as a script
for the figures (modules, cycles, levels, upward imports). A new module must fall in a layer:
``doa.x.*`` places everything under the folder ``doa/x/``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from tests.import_graph import Import, cycles, edges, graph, layer_index, levels, upward

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "doa"

# Low to high. A module may import its own layer and the layers below it, never above.
LAYERS: list[list[str]] = [
    # Leaves: the error classes, Event/lineage ids, and Stream/Node/Step (what every node kind
    # and the topology share; it exists so that kinds need not import the topology), and
    # unpickling that finds a topology file's classes wherever the file was loaded from.
    ["doa.errors", "doa.keys", "doa.events", "doa.node", "doa.pickles"],
    # Avro on the wire: schemas, the codec and its generated strict reader, explanations.
    ["doa.wire.*"],
    # Edges to processes and the network that know no topology: client security options,
    # HMAC signing, reachability, and the brokers doa can start. local/ sits here and not near
    # the top (as first sketched): `doa run` starts the embedded broker when none is configured
    # (DESIGN invariant 7), so engines/launch.py needs local/embedded.py, and BrokerError,
    # raised by cluster/admin.py and the engines, lives there. local/ imports only doa.errors.
    ["doa.cluster", "doa.cluster.security", "doa.cluster.signing", "doa.cluster.reach",
     "doa.cluster.fetchwait", "doa.local.*"],
    # Node kinds, in the order they build on one another: compiled/ reuses the kernels'
    # Numba library, learner/ calls compiled models; the detector needs only the leaves.
    ["doa.kernels.*"],
    ["doa.compiled.*"],
    ["doa.learner.*", "doa.detector", "doa.model.*", "doa.join"],
    # Declaring a topology (it offers the kinds' constructors), and the public facade.
    ["doa", "doa.topology.*"],
    # One node, engine-free: decode, step, encode; the merge; snapshots.
    ["doa.runtime.*"],
    # What a run tells the tools around it: per-batch counters (a metered runner), Prometheus
    # metrics and OpenLineage events; the engines start it, it reads their workers duck-typed.
    ["doa.observe.*"],
    # What doa does to a cluster given a topology: topics, the schema registry.
    ["doa.cluster.admin", "doa.cluster.registry", "doa.cluster.codecs",
     "doa.cluster.streams", "doa.cluster.limits"],
    # Users' tools: the Python client, the dead-letter tool, the in-memory harness; lineage,
    # exports and training sets read from the log.
    ["doa.client", "doa.subscriber", "doa.dlq", "doa.dlq_read", "doa.dlq_books", "doa.testing",
     "doa.lineage.*", "doa.collect.*", "doa.dataset"],
    # What exists: processes describe themselves (doa run), the catalog reads it back.
    ["doa.catalog.*"],
    # Nodes on Kafka: the aiokafka and Faust engines, the partitioned base, `doa run`.
    ["doa.engines.*"],
    ["doa.demo.*"],
    # `doa ui`: a local web app over the catalog, the log and lineage (aiohttp, doa[ui]).
    ["doa.ui.*"],
    # Deploying a topology: docker-compose files (`doa compose`).
    ["doa.deploy.*"],
    ["doa.cli.*"],
]

# Upward imports that exist today, each with its reason; a new one fails the test. Remove an
# entry when its import goes (test_allowed_exceptions_still_exist says when).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}

layer = layer_index(LAYERS)


def describe(e: Import) -> str:
    return (f"{e.source} (layer {layer(e.source)}, line {e.line}) imports {e.target} "
            f"(layer {layer(e.target)}, higher)")


def test_every_module_has_a_layer() -> None:
    g = graph(PACKAGE)
    assert len(g) > 50, "the package was not found"
    missing = []
    for module in g:
        try:
            layer(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"place these modules in LAYERS of tests/test_layers.py: {missing}"


def test_no_import_cycles() -> None:
    found = cycles(graph(PACKAGE))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_upward_imports() -> None:
    bad = [e for e in upward(edges(PACKAGE), layer)
           if (e.source, e.target) not in ALLOWED_UPWARD]
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(map(describe, bad))


def test_allowed_exceptions_still_exist() -> None:
    present = {(e.source, e.target) for e in upward(edges(PACKAGE), layer)}
    gone = sorted(set(ALLOWED_UPWARD) - present)
    assert not gone, f"these imports are gone; delete them from ALLOWED_UPWARD: {gone}"


def test_the_graph_sees_imports_inside_functions_not_type_checking(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "low.py").write_text("from typing import TYPE_CHECKING\n"
                                 "if TYPE_CHECKING:\n    from pkg.high import X\n"
                                 "def f():\n    from . import high\n")
    (root / "high.py").write_text("import pkg.sub.deep\nfrom pkg.sub import deep as d\n")
    (root / "sub" / "deep.py").write_text("from ..low import f\n")
    g = graph(root)
    assert g == {"pkg": set(), "pkg.sub": set(), "pkg.low": {"pkg.high"},
                 "pkg.high": {"pkg.sub.deep"}, "pkg.sub.deep": {"pkg.low"}}
    assert cycles(g) == [["pkg.high", "pkg.low", "pkg.sub.deep"]]
    assert set(levels(g).values()) == {1}
    ranks = layer_index([["pkg.low"], ["pkg.sub.*"], ["pkg", "pkg.high"]])
    assert {(e.source, e.target) for e in upward(edges(root), ranks)} == {
        ("pkg.low", "pkg.high")}


def test_levels_count_the_longest_chain() -> None:
    g = {"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": set()}
    assert levels(g) == {"a": 3, "b": 2, "c": 1, "d": 1}


# --- ARCHITECTURE.md names only what exists ---------------------------------------------------

DOTTED = re.compile(r"`(doa(?:\.\w+)+)(?:\(\))?`")


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attr in parts[end:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def architecture_names() -> list[str]:
    return sorted(set(DOTTED.findall((REPO / "ARCHITECTURE.md").read_text())))


def test_architecture_cites_names() -> None:
    assert len(architecture_names()) >= 20


@pytest.mark.parametrize("dotted", architecture_names())
def test_architecture_name_resolves(dotted: str) -> None:
    try:
        resolve(dotted)
    except (ImportError, AttributeError) as e:
        pytest.fail(f"ARCHITECTURE.md cites `{dotted}`, which does not resolve: {e}")
