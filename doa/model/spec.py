"""The kind of a model node: its streams, the models it loads, its checks, its description.

:class:`ModelSpec` is what :func:`doa.model.node.model_node` builds a node from. It loads the
topology's model in its start hook (:meth:`ModelSpec.start`, once per process, never at
import) and a published version from its bytes when that version first scores
(:meth:`ModelSpec.scorer`); :meth:`ModelSpec.checks` says what a topology declares wrong
about the node's streams (feature fields, the schema of each stream for its role).

Examples
--------
>>> spec = ModelSpec("payout", ("claims",), "payouts", ("amount",), "claim_id", None,
...                  "predict_batch", "Rule", versions="payout.versions", models="payout.models")
>>> spec.streams()
(('payout.versions', 'claims'), ('payouts', 'payout.models'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doa.model.artifacts import load_bytes
from doa.model.formats import FeatureNamesError, ModelLoadError, Scorer, load, not_numbers
from doa.model.labels import Labels, Promote
from doa.model.paths import missing
from doa.node import NUMBERS, Node, NodeKind, missing_fields, stream_name

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["ARTIFACT_SCHEMA", "PREDICTION_SCHEMA", "ModelSpec"]

PREDICTION_SCHEMA = "doa.Prediction"
ARTIFACT_SCHEMA = "doa.ModelArtifact"
_SCHEMAS = {"models": "doa.ModelEvent", "outcomes": "doa.Outcome", "metrics": "doa.Metric",
            "unmatched": "doa.UnmatchedLabel"}


class _Loaded:
    """What a node process loads (never in the state): the topology's model, the published
    versions' models by SHA-256, and the signing key."""

    def __init__(self) -> None:
        self.scorer: Scorer | None = None
        self.started = False
        self.scorers: dict[str, Scorer] = {}
        self.key: bytes | None = None


@dataclass(frozen=True)
class ModelSpec(NodeKind):
    """The kind of a model node (see :class:`doa.node.NodeKind`).

    Attributes
    ----------
    name : the node's name (the ``model`` of its predictions)
    reads : the streams scored; predictions : the stream written
    features : the feature fields, in the order of the model's columns
    join, key : fields copied to the predictions' ``join`` and ``key`` (``join`` None: the
        input event's id, hex)
    format, source : what :func:`doa.model.formats.describe` says of the model
    version : the version number of the topology's model
    custom_output : True when an ``output`` function builds the records (user's schema)
    versions : the versions stream read (None: the version never changes)
    keep : published versions whose bytes are kept for rollbacks
    shadow : the stream of the candidate's predictions; models : of ``doa.ModelEvent``
    labels : where labels come from (:class:`~doa.model.labels.Labels`, stream names)
    promote_when : the candidate's promotion policy (None: promoted by command only)
    folder : the folder a relative model path was resolved against (for error messages)
    """

    kind = "model"
    name: str
    reads: tuple[str, ...]
    predictions: str
    features: tuple[str, ...]
    join: str | None
    key: str | None
    format: str
    source: str
    version: int = 1
    custom_output: bool = False
    model: Any = field(default=None, compare=False, repr=False)
    classes: tuple[Any, ...] | None = None
    loaded: _Loaded = field(default_factory=_Loaded, compare=False, repr=False)
    versions: str | None = None
    keep: int = 5
    shadow: str | None = None
    models: str | None = None
    labels: Labels | None = None
    promote_when: Promote | None = None
    folder: Path | None = field(default=None, compare=False, repr=False)

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        lab = self.labels
        reads = (self.versions, *self.reads, None if lab is None else stream_name(lab.stream))
        writes = (self.predictions, self.shadow, self.models,
                  *((stream_name(lab.outcomes), stream_name(lab.metrics),
                     stream_name(lab.unmatched)) if lab else ()))
        return tuple(s for s in reads if s), tuple(s for s in writes if s)

    def start(self) -> None:
        """Load the model (a file is read here, not at import; or by :meth:`file_problems`,
        which ``doa check`` calls); read the signing key."""
        if not self.loaded.started:
            from doa.cluster.signing import state_key

            if self.loaded.scorer is None:
                self.loaded.scorer = load(self.model, node=self.name, features=self.features,
                                          classes=self.classes)
            self.loaded.key = state_key() if self.versions is not None else None
            self.loaded.started = True

    def scorer(self, state: dict[str, Any] | None = None, version: int | None = None) -> Scorer:
        """The loaded model of ``version`` (default: the topology's), loaded now if needed."""
        self.start()
        assert self.loaded.scorer is not None
        info = None if state is None or version is None else state["versions"][version]
        if info is None or info["data"] is None:
            return self.loaded.scorer
        loaded = f"{info['sha256']} {info.get('classes')}"  # the same bytes, other classes
        cached = self.loaded.scorers.get(loaded)
        if cached is None:
            cached = self.loaded.scorers[loaded] = load_bytes(
                info["data"], info["format"], node=self.name, version=version or 0,
                features=self.features, classes=info.get("classes") or self.classes)
        return cached

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """The features (numbers) and join, key are fields of every stream read; without an
        ``output`` function the written stream has schema doa.Prediction; every other
        stream has doa's schema for its role; the versions stream has the inputs'
        partitions (a node instance reads the same partition of each); a model file
        exists, and the model names its features as the node does (:meth:`file_problems`)."""
        out: list[str] = self.file_problems(node.name)
        for stream in self.reads:
            out += missing_fields(node, streams, stream, self.features, "feature")
            out += [f"model {node.name!r}: feature field {f!r} of stream {stream!r} "
                    f"({streams.schema(stream)}) is {avro}, not a number ({NUMBERS})"
                    for f, avro in not_numbers(streams.fields(stream), self.features)]
            out += missing_fields(node, streams, stream, [f for f in (self.join, self.key)
                                                          if f is not None], "join/key")
        for written in (self.predictions, self.shadow):
            declared = streams.schema(written) if written else None
            if not self.custom_output and declared is not None and declared != PREDICTION_SCHEMA:
                out.append(f"model {node.name!r}: it writes {PREDICTION_SCHEMA} records, stream "
                           f"{written!r} has schema {declared} (give output= to build "
                           "records of your own schema)")
        lab = self.labels
        roles = {"versions": (self.versions, ARTIFACT_SCHEMA),
                 "models": (self.models, _SCHEMAS["models"]),
                 **{r: (getattr(lab, r), _SCHEMAS[r]) for r in ("outcomes", "metrics",
                                                                "unmatched") if lab}}
        for role, (stream, expected) in roles.items():
            declared = streams.schema(stream) if stream else None
            if declared is not None and declared != expected:
                out.append(f"model {node.name!r}: its {role} stream {stream!r} must have "
                           f"schema {expected}, not {declared}")
        if lab is not None:
            if self.join is None:
                out.append(f"model {node.name!r}: labels= needs join= (the field pairing a "
                           "label with its record)")
            else:
                out += missing_fields(node, streams, str(stream_name(lab.stream)), [self.join],
                                      "join")
            out += missing_fields(node, streams, str(stream_name(lab.stream)), [lab.label],
                                  "label")
        return out

    def file_problems(self, name: str) -> list[str]:
        """What ``doa check`` says of the node's model: its file does not exist, or the model
        names its features otherwise or in another order than the node declares
        (:class:`~doa.model.formats.FeatureNamesError`). The model is loaded here and kept
        for :meth:`start`; another error loading it is left for :meth:`start` to raise.

        Examples
        --------
        >>> spec = ModelSpec("payout", ("claims",), "payouts", ("amount",), None, None,
        ...                  "onnx", "/no/such/payout.onnx", model="/no/such/payout.onnx")
        >>> spec.file_problems("payout")
        ["model 'payout': model file '/no/such/payout.onnx' does not exist"]
        >>> import pandas as pd
        >>> from sklearn.linear_model import LinearRegression
        >>> df = pd.DataFrame({"hour": [1.0, 2.0, 3.0], "km": [2.0, 1.0, 5.0]})
        >>> lr = LinearRegression().fit(df, [1.0, 2.0, 3.0])
        >>> spec = ModelSpec("price", ("rides",), "prices", ("km", "hour"), None, None,
        ...                  "sklearn", "LinearRegression", model=lr)
        >>> spec.file_problems("price")  # doctest: +ELLIPSIS
        ["model node 'price': model (LinearRegression) was trained on features in another \
order (hour, km) than the node declares (km, hour), ... declare features=['hour', 'km'] in the \
model's order, or retrain"]
        """
        if isinstance(self.model, (str, Path)) and not Path(self.model).is_file():
            return [missing(self.model, self.folder, name)]
        if self.loaded.scorer is None:
            try:
                self.loaded.scorer = load(self.model, node=self.name, features=self.features,
                                          classes=self.classes)
            except FeatureNamesError as exc:
                return [str(exc)]
            except ModelLoadError:  # the node says it when it starts
                return []
        return []

    def commands(self) -> dict[str, str]:
        """The versions stream (``doa model publish``, ``promote``, ``rollback`` write it)."""
        return {} if self.versions is None else {self.versions: "versions"}

    def describe(self) -> dict[str, Any]:
        lab = self.labels
        named = {"inputs": list(self.reads), "predictions": self.predictions,
                 **{r: s for r, s in (("versions", self.versions), ("shadow", self.shadow),
                                      ("models", self.models)) if s}}
        if lab is not None:
            named.update({r: getattr(lab, r) for r in ("outcomes", "metrics", "unmatched")
                          if getattr(lab, r)}, labels=str(stream_name(lab.stream)))
        return {"model": self.source, "format": self.format, "version": self.version,
                "features": list(self.features), "join": self.join, "key": self.key,
                "metric": None if lab is None else type(lab.metric).__name__,
                "promote_when": None if self.promote_when is None else
                {"margin": self.promote_when.margin,
                 "after_labels": self.promote_when.after_labels},
                "streams": named}
