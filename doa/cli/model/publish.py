"""``doa model publish``: a model file as the next version of a model node.

The file is loaded here first, as the node would load it, so a file the node could not load
is refused before anything is sent; the artifact is then cut into chunks (sealed with the
signing key when one is set) and sent to every partition of the node's versions stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from doa.cli.console import err, out
from doa.cli.model.versions import at_the_end, node_spec, reach, read_all, send_all, stamp
from doa.cli.options import broker_option
from doa.errors import DoaError

if TYPE_CHECKING:
    from doa.model.formats import Scorer

__all__ = ["parse_meta", "publish_cmd", "publish_version"]


def publish_version(t: Any, node: str, path: str | Path, *, broker: str, note: str = "",
                    candidate: bool = False, chunk_bytes: int | None = None,
                    metadata: dict[str, str] | None = None, classes: list[Any] | None = None,
                    timestamp_ms: int | None = None) -> tuple[int, list[int]]:
    """Publish the model file ``path`` as the next version of model node ``node``; its
    number, and the candidate versions it replaces (a candidate only: one runs at a time).
    The file is loaded here first, so a file the node could not load (an unknown
    extension, bytes that do not load or look like the other format, another number of
    input features than the node declares, features named otherwise or in another order,
    :class:`~doa.model.formats.FeatureNamesError`) is refused and nothing is sent; so is a
    model whose predictions are of another type than the live version's
    (:func:`doa.model.compat.type_refusal`).
    ``classes`` names an ONNX model's classes (kept with the version). ``timestamp_ms`` is
    the version's place in event time (None: where the scored streams end now,
    :func:`~doa.cli.model.versions.at_the_end`)."""
    from doa.cluster.signing import signing_key
    from doa.model.artifacts import CHUNK_BYTES, chunk_records, load_bytes
    from doa.model.compat import CLASSES_KEY
    from doa.model.formats import ModelLoadError, file_format
    from doa.model.kept import model_candidates

    spec = t.nodes[node].spec
    try:
        fmt = file_format(path, node=node)
        data = Path(path).read_bytes()
        records = read_all(broker, t, spec.versions)
        known = [e["version"] for e in records if e["action"] == "publish"]
        version = int(max([spec.version, *known])) + 1
        scorer = load_bytes(data, fmt, node=node, version=version, features=spec.features,
                            classes=classes or spec.classes, source=str(path))
        if classes is not None:
            _check_classes(scorer, fmt, spec, version, str(path), classes)
            metadata = {**(metadata or {}), CLASSES_KEY: json.dumps(classes)}
    except ModelLoadError as exc:
        raise type(exc)(f"{exc}; nothing sent") from None
    _refuse_type_change(t, spec, scorer, records, f"version {version} ({path})",
                        signing_key())
    replaced: list[int] = []
    if candidate and any(r["candidate"] for r in records):
        events = [] if spec.models is None else read_all(broker, t, spec.models)
        replaced = sorted(set(model_candidates(records, events, spec.version, spec.keep,
                                               t.streams[spec.versions].partitions).values()))
    chunks = chunk_records(node, version, data, fmt=fmt, chunk_bytes=chunk_bytes or CHUNK_BYTES,
                           key=signing_key(), note=note, candidate=candidate,
                           metadata=metadata, **stamp())
    send_all(broker, t, spec.versions, chunks,
             at_the_end(broker, t, spec, spec.versions) if timestamp_ms is None else timestamp_ms)
    return version, replaced


def parse_meta(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The metadata of ``--meta KEY=VALUE`` options; a one-line error for an item without
    ``=`` or a key of doa's own (``doa.``: ``doa.classes`` is what ``--classes`` keeps).

    Examples
    --------
    >>> parse_meta(("trained=2026-11-27", "auc=0.91=ok"))
    {'trained': '2026-11-27', 'auc': '0.91=ok'}
    >>> parse_meta(("doa.classes=[0,1]",))
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: --meta doa.classes=[0,1]: keys starting with 'doa.' are doa's own \
(--classes sets doa.classes); nothing sent
    """
    metadata: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DoaError(f"--meta {item}: expected KEY=VALUE; nothing sent")
        if key.strip().startswith("doa."):
            raise DoaError(f"--meta {item}: keys starting with 'doa.' are doa's own "
                           "(--classes sets doa.classes); nothing sent")
        metadata[key.strip()] = value
    return metadata


def _check_classes(scorer: Scorer, fmt: str, spec: Any, version: int, path: str,
                   classes: list[Any]) -> None:
    """Refuse ``--classes`` for a model that is not ONNX or has another number of classes
    (the classes ``scorer``, loaded with them, has of its own: the same ONNX session
    without them, not the file loaded again)."""
    from doa.model.compat import written
    from doa.model.formats import ModelLoadError, OnnxScorer

    where = f"model node {spec.name!r}: --classes {','.join(map(str, classes))}"
    if fmt != "onnx":
        raise ModelLoadError(f"{where} names an ONNX model's classes; {path} is {fmt}")
    assert isinstance(scorer, OnnxScorer)  # what load_bytes makes of any ONNX file
    bare = written(OnnxScorer(scorer.session, spec.name, path), len(spec.features))
    found = None if bare is None else bare[1]
    if found is None or len(found) != len(classes):
        raise ModelLoadError(f"{where}: version {version} ({path}) has "
                             f"{'no' if found is None else len(found)} classes "
                             f"({', '.join(found or [])})")


def _refuse_type_change(t: Any, spec: Any, scorer: Any, records: list[Any], what: str,
                        key: bytes | None) -> None:
    """A one-line error when ``scorer`` predicts another type than a live version of the
    node (on any partition): its stream would change type under its consumers."""
    from doa.model.compat import live_scorers, type_refusal
    from doa.model.kept import model_roles

    roles = model_roles(records, spec.version, spec.keep, t.streams[spec.versions].partitions)
    live = live_scorers(spec, records, (r["live"] for r in roles.values()), key)
    for version, running in sorted(live.items()):
        line = type_refusal(scorer, running, width=len(spec.features), node=spec.name,
                            what=what, stream=spec.predictions,
                            live_name=f"live version {version}")
        if line is not None:
            raise DoaError(line)


@click.command("publish")
@click.argument("topology")
@click.argument("node")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--note", default="", help="Why this version; kept with it.")
@click.option("--candidate", is_flag=True,
              help="Run it beside the live version (its predictions go to the shadow stream).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata kept with it.")
@click.option("--chunk-bytes", type=int, default=None, help="Bytes per record (512 KiB).")
@click.option("--classes", default=None, metavar="A,B,...",
              help="An ONNX model's classes, in the order of its probability columns (e.g. "
                   "False,True for a classifier skl2onnx exported with labels 0,1).")
@click.option("--at", "at", default=None, metavar="TIME",
              help="The version's place in event time: an ISO time or epoch ms with the "
                   "suffix ms (default: just after the newest record of the streams the node "
                   "scores, so a replay of the log switches where the live node did).")
@broker_option
def publish_cmd(topology: str, node: str, file: str, note: str, candidate: bool,
                meta: tuple[str, ...], chunk_bytes: int | None, classes: str | None,
                at: str | None, broker: str | None) -> None:
    """Publish FILE (.onnx, .joblib, .pkl) as the next version of model node NODE.

    The node switches to it between two records, by their timestamps: a version's records
    are stamped just after the newest record of the streams the node scores (each
    partition's own), or at --at, so a replay of the log switches at the same record.
    """
    from doa.collect.bounds import parse_bound
    from doa.model.compat import parse_classes

    when = None if at is None else parse_bound(at).time_ms
    if at is not None and when is None:
        raise DoaError(f"--at {at}: expected a time (2024-05-01T12:00, 1714564800000ms), "
                       "not an offset")

    metadata = parse_meta(meta)
    address = reach(broker)
    t, spec = node_spec(topology, node)
    if spec.kind == "learner":
        raise DoaError(f"learner {node!r} learns its versions; its challenger is declared in "
                       "the topology: topology.learner(..., challenger=MODEL, shadow=STREAM, "
                       "promote_when=doa.Promote(...))")
    if candidate and spec.shadow is None and spec.labels is None:
        raise DoaError(f"model node {node!r} declares neither shadow= nor labels=: a "
                       "candidate's predictions would go nowhere")
    version, replaced = publish_version(t, node, file, broker=address, note=note,
                                        candidate=candidate, chunk_bytes=chunk_bytes,
                                        metadata=metadata,
                                        classes=None if classes is None else
                                        parse_classes(classes), timestamp_ms=when)
    role = "candidate" if candidate else "live version"
    replacing = "".join(f", replacing candidate version {v}" for v in replaced)
    out.print(f"published {file} as version {version} of {node} ({role}) on "
              f"{spec.versions}{replacing}; see `doa model list`")
    if candidate and spec.shadow is None:  # walk 8: its predictions dropped, nothing said
        err.print(f"note: model node {node!r} declares no shadow= stream: the candidate's "
                  "predictions count in its label metric (`doa model compare`) and are not "
                  "kept")

