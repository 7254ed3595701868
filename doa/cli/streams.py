"""``doa`` commands that move records through a topology's streams, one module each:
:mod:`doa.cli.run` (run its nodes), :mod:`doa.cli.publish` (JSON lines in) and
:mod:`doa.cli.subscribe` (JSON lines out). ``doa broker`` and ``doa dlq`` are in
:mod:`doa.cli.broker` and :mod:`doa.cli.dlq`.

The names stay importable from here, as before the split.

Examples
--------
>>> from doa.cli import publish, run, streams, subscribe
>>> (streams.run_cmd is run.run_cmd, streams.publish_cmd is publish.publish_cmd,
...  streams.subscribe_cmd is subscribe.subscribe_cmd)
(True, True, True)
"""

from __future__ import annotations

from doa.cli.publish import _valid_lines as _valid_lines
from doa.cli.publish import publish_cmd
from doa.cli.run import StatusTicker, numba_nodes, run_cmd, stats_table, summary_line
from doa.cli.subscribe import meta_item, subscribe_cmd

__all__ = ["StatusTicker", "meta_item", "numba_nodes", "publish_cmd", "run_cmd", "stats_table",
           "subscribe_cmd", "summary_line"]
