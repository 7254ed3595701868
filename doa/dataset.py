"""A learner's training set from the log, as a ``pyarrow.Table`` (``doa dataset`` in Python).

Each row is one label the learner learned from, in the order it learned: the features it
predicted on (as it logged them), its prediction, the label, the model versions that
predicted and learned, timestamps and event ids. The columns are listed in
:mod:`doa.collect.dataset`. Needs pyarrow (``pip install 'doa[data]'``); ``.to_pandas()``
needs pandas.

Examples
--------
With a broker holding a run of the fraud demo (``DOA_BROKER`` set; the README's "Collect a
training set" runs this and checks its output):

>>> import doa.dataset                                                     # doctest: +SKIP
>>> df = doa.dataset.read("topologies/fraud.py", "scorer").to_pandas()     # doctest: +SKIP
>>> df[["join", "amount", "label"]].tail(2)                                # doctest: +SKIP
      join         amount  label
2998  2998  217339.292261  False
2999  2999  378791.873975   True
"""

from __future__ import annotations

import datetime
from typing import Any

from doa.collect.bounds import Bound, epoch_ms, parse_bound
from doa.errors import DoaError
from doa.topology.topology import Topology

BoundLike = Bound | str | int | datetime.datetime | None


def read(topology: Topology | str, learner: str, *, broker: str | None = None,
         start: BoundLike = None, end: BoundLike = None) -> Any:
    """The training set of ``learner`` in ``topology`` (a :class:`~doa.Topology` or a file).

    Parameters
    ----------
    broker : bootstrap address (default: ``$DOA_BROKER``)
    start, end : bound the outcomes (when the learner learned): an offset (int), a time
        (datetime, or text as ``doa dataset --from`` takes it), or a :class:`Bound`;
        ``end`` is exclusive and defaults to the end of the outcomes when the read starts

    Returns
    -------
    pyarrow.Table
    """
    from doa.collect.arrow import pyarrow
    from doa.collect.columns import to_table
    from doa.collect.dataset import collect
    from doa.collect.read import off_loop
    from doa.local.embedded import configured_broker

    pyarrow()  # before reading anything: a missing extra is the first thing said
    address = configured_broker(broker)
    if not address:
        raise DoaError("no broker: give broker='HOST:PORT' or set DOA_BROKER")
    data = off_loop(collect, topology, learner, broker=address, start=as_bound(start),
                    end=as_bound(end))
    return to_table(data)


def as_bound(value: BoundLike) -> Bound | None:
    """A bound from what a Python caller gives.

    >>> as_bound(10), as_bound("1700000000000ms").time_ms
    (Bound(offset=10, time_ms=None), 1700000000000)
    >>> as_bound(datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc))
    Bound(offset=None, time_ms=1700000000000)
    """
    if value is None or isinstance(value, Bound):
        return value
    if isinstance(value, bool):
        raise DoaError(f"bound {value!r}: expected an offset, a time or a text bound")
    if isinstance(value, int):
        return Bound(offset=value)
    if isinstance(value, datetime.datetime):
        return Bound(time_ms=epoch_ms(value))
    return parse_bound(str(value))
