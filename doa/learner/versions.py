"""Model versions of a learner: created, rolled back, reset; and what drift makes it do.

A learner's state keeps the last ``keep_versions`` versions of its model (pickled, with their
creation time, label count and metric). Versions only go up: a rollback to version 3 creates a
new version loaded from 3, and says so in a ``doa.ModelEvent``. Every prediction carries the
version that made it.

The kept versions are part of the learner's state, so they are as trusted as its snapshot
(signed with a signing key, see :mod:`doa.cluster.signing`). The ``blob`` of a ``created``
event leaves
the state on the ``models`` stream: with ``DOA_SIGNING_KEY`` set it is sealed (an HMAC-SHA256
bound to the model, partition and version in front of the pickle); read it back with
:func:`load_model`, which checks the tag before it unpickles anything. Without a key it is the
bare pickle, as before signing existed.

Examples
--------
>>> from river import linear_model, metrics
>>> state = {"model": linear_model.LinearRegression(), "metric": metrics.MAE(),
...          "version": 1, "labels": 0}
>>> start_versions(state, timestamp=0)
>>> event = new_version(state, "m", partition=0, timestamp=10, keep=5)
>>> event["action"], event["version"], sorted(state["versions"])
('created', 2, [1, 2])
>>> rollback(state, 1, "m", partition=0, timestamp=20, reason="test")["from_version"]
1
>>> state["version"]
3
>>> type(load_model(event, env={})).__name__  # no key set: the blob is a bare pickle
'LinearRegression'
"""

from __future__ import annotations

import logging
import math
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from doa.cluster.signing import SignatureError, seal, signing_key, unseal
from doa.pickles import loads

POLICIES = ("ignore", "reset", "rollback")
log = logging.getLogger(__name__)


def start_versions(state: dict[str, Any], timestamp: int) -> None:
    """Record the initial model as version ``state["version"]``."""
    state["versions"] = OrderedDict()
    _keep(state, state["version"], timestamp, keep=None)


def river_model(model: Any) -> Any:
    """The River object of a model (a compiled model turns back into River)."""
    to_river = getattr(model, "to_river", None)
    return to_river() if callable(to_river) else model


def next_version(state: dict[str, Any]) -> int:
    """A version number never used before (a challenger's number is never reused)."""
    number = max([*state["versions"], state.get("issued", 0)]) + 1
    state["issued"] = number
    return int(number)


def keep_version(state: dict[str, Any], timestamp: int, keep: int) -> None:
    """Keep the live model as its version is now (a promoted challenger)."""
    _keep(state, state["version"], timestamp, keep)


def _keep(state: dict[str, Any], version: int, timestamp: int, keep: int | None) -> bytes:
    blob = pickle.dumps(river_model(state["model"]), protocol=5)  # River-readable
    value = None if state["metric"] is None else state["metric"].get()
    state["versions"][version] = {"created": timestamp, "labels": state["labels"],
                                  "metric": None if value is None else float(value),
                                  "blob": blob}
    while keep is not None and len(state["versions"]) > keep:
        state["versions"].popitem(last=False)
    return blob


def _event(state: dict[str, Any], name: str, action: str, from_version: int, partition: int,
           timestamp: int, reason: str, blob: bytes | None = None) -> dict[str, Any]:
    value = None if state["metric"] is None else state["metric"].get()
    metric = None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)
    return {"model": name, "action": action, "version": state["version"],
            "from_version": from_version, "reason": reason, "labels": state["labels"],
            "metric": metric, "partition": partition, "timestamp": timestamp, "blob": blob}


def new_version(state: dict[str, Any], name: str, *, partition: int, timestamp: int,
                keep: int, reason: str = "") -> dict[str, Any]:
    """Bump the version, keep the model as it is now; the ``created`` event."""
    previous = state["version"]
    state["version"] = next_version(state)
    blob = _keep(state, state["version"], timestamp, keep)
    sealed = seal(signing_key(), blob, "model", name, partition, state["version"])
    return _event(state, name, "created", previous, partition, timestamp,
                  reason or f"{state['labels']} labels learned", sealed)


def load_model(event: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Any:
    """The model of a ``created`` ``doa.ModelEvent``, its signature checked first.

    With a signing key in ``env`` (default: the environment), an unsigned or mis-signed blob
    raises :class:`doa.cluster.signing.SignatureError` naming the stream, partition and offset when
    ``event`` is a :class:`doa.Event`, and is never unpickled.
    """
    blob = event.get("blob")
    if blob is None:
        raise ValueError(f"model event {event.get('action')!r} of {event.get('model')!r} "
                         f"carries no model (only 'created' events do)")
    try:
        data = unseal(signing_key(env), blob, "model", event["model"], event["partition"],
                      event["version"])
    except SignatureError as e:
        offset = getattr(event, "offset", None)  # a doa.Event read from the models stream
        where = "" if offset is None else (f"stream {getattr(event, 'stream', '?')!r} partition "
                                           f"{getattr(event, 'partition', '?')} offset {offset}: ")
        raise SignatureError(f"{where}model {event['model']!r} version {event['version']} "
                             f"(partition {event['partition']}) is {e}; refused, not "
                             f"unpickled") from None
    return loads(data)


def rollback(state: dict[str, Any], target: int, name: str, *, partition: int,
             timestamp: int, reason: str, keep: int = 10) -> dict[str, Any]:
    """Load version ``target`` as a new version; raise KeyError if it is not kept."""
    kept = state["versions"][target]
    state["model"] = loads(kept["blob"])  # from the state: verified with its snapshot
    state["version"] = next_version(state)
    _keep(state, state["version"], timestamp, keep)
    return _event(state, name, "rollback", target, partition, timestamp, reason)


def reset(state: dict[str, Any], prototype: Any, name: str, *, partition: int,
          timestamp: int, reason: str, keep: int = 10) -> dict[str, Any]:
    """Start over from a fresh clone of ``prototype`` as a new version."""
    previous = state["version"]
    state["model"] = prototype.clone()
    state["version"] = next_version(state)
    _keep(state, state["version"], timestamp, keep)
    return _event(state, name, "reset", previous, partition, timestamp, reason)


def version_before(state: dict[str, Any], timestamp: int) -> int | None:
    """The newest kept version created before ``timestamp`` (None if there is none)."""
    older = [v for v, kept in state["versions"].items() if kept["created"] < timestamp]
    return max(older) if older else None


def on_drift(state: dict[str, Any], policy: str, prototype: Any, name: str, drift: Any,
             keep: int) -> dict[str, Any] | None:
    """Apply ``policy`` to a ``doa.DriftEvent``; the resulting ``doa.ModelEvent``.

    ``rollback`` loads the newest version created before the drift event's triggering record
    (the model before drift was suspected); with none kept, it resets.

    The event applies to the learner of the partition whose record made the detector fire
    (its ``partition`` field). Read on another partition (a keyed drift stream), it is not
    applied: None, and a warning line naming it.

    >>> from doa.events import Event
    >>> elsewhere = Event({"detector": "ADWIN", "signal": "error", "position": 9,
    ...                    "partition": 1, "timestamp": 5}, stream="drift", partition=0,
    ...                    offset=4, timestamp=5)
    >>> on_drift({}, "reset", None, "m", elsewhere, keep=5) is None
    True
    """
    reason = (f"{drift.get('detector', 'detector')} on {drift.get('signal', '?')} fired at "
              f"position {drift.get('position', '?')}")
    partition, timestamp = drift.partition, drift.timestamp
    fired_on = drift.get("partition")
    if fired_on is not None and fired_on != partition:
        log.warning("learner %r partition %s: drift event at stream %r partition %s offset %s "
                    "(%s) was fired by partition %s's records; not applied here (a drift "
                    "stream with a key sends it to its key's partition: declare it with "
                    "key=None)", name, partition, drift.stream, partition, drift.offset, reason,
                    fired_on)
        return None
    if policy == "reset":
        return reset(state, prototype, name, partition=partition, timestamp=timestamp,
                     reason=reason, keep=keep)
    if policy == "rollback":
        target = version_before(state, int(drift.get("timestamp", timestamp)))
        if target is None:
            return reset(state, prototype, name, partition=partition, timestamp=timestamp,
                         reason=reason + "; no version before it is kept", keep=keep)
        return rollback(state, target, name, partition=partition, timestamp=timestamp,
                        reason=reason, keep=keep)
    return _event(state, name, "drift_ignored", state["version"], partition, timestamp, reason)
