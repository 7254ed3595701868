"""Options and helpers every ``doa`` command that talks to a broker shares.

Examples
--------
>>> need_broker("127.0.0.1:9092")
'127.0.0.1:9092'
>>> json_default(b"\\x01\\xff")
'01ff'
"""

from __future__ import annotations

from typing import Any

import click

from doa.errors import DoaError

broker_option = click.option("--broker", envvar="DOA_BROKER", default=None, metavar="HOST:PORT",
                             help="Kafka bootstrap address (default: $DOA_BROKER).")
topology_option = click.option("--topology", "-t", default=None, metavar="TOPOLOGY",
                               help="Take the stream's schema from this topology "
                                    "(default: the version registered on the broker).")


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
