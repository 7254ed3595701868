"""Options and helpers every ``doa`` command that talks to a broker shares.

Examples
--------
>>> need_broker("127.0.0.1:9092")
'127.0.0.1:9092'
>>> json_default(b"\\x01\\xff")
'01ff'
>>> [Duration().convert(v, None, None) for v in ("90", "1.5", "30s", "1m", "2h", 60)]
[90.0, 1.5, 30.0, 60.0, 7200.0, 60.0]
"""

from __future__ import annotations

import re
from typing import Any

import click

from doa.errors import DoaError

broker_option = click.option("--broker", envvar="DOA_BROKER", default=None, metavar="HOST:PORT",
                             help="Kafka bootstrap address (default: $DOA_BROKER).")
topology_option = click.option("--topology", "-t", default=None, metavar="TOPOLOGY",
                               help="Take the stream's schema from this topology "
                                    "(default: the version registered on the broker).")


class Duration(click.ParamType):
    """A time: seconds (``60``, ``1.5``) or a number with a unit (``30s``, ``1m``, ``1h``), in
    seconds; above 0, or at least 0 with ``zero=True``."""

    name = "duration"
    UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}

    def __init__(self, zero: bool = False) -> None:
        self.zero = zero

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            match = re.fullmatch(r"\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*([smh]?)\s*", str(value))
            if not match:
                self.fail(f"{value!r} is not a duration: seconds (60) or with a unit (30s, 1m, "
                          "1h)", param, ctx)
            seconds = float(match[1]) * self.UNITS[match[2]]
        if seconds < 0 or (seconds == 0 and not self.zero):
            self.fail(f"{value!r}: give a time {'>=' if self.zero else 'above'} 0, e.g. 60 or "
                      "1m", param, ctx)
        return seconds


def need_broker(broker: str | None) -> str:
    """``broker``, or the one-line error of a command given none."""
    if not broker:
        raise DoaError("no broker: give --broker HOST:PORT or set DOA_BROKER "
                       "(`doa broker` runs one)")
    return broker


def json_default(value: Any) -> Any:
    """What ``orjson.dumps`` shows for a value it has no form for (bytes: hex)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    raise TypeError(f"cannot show a {type(value).__name__} as JSON")
