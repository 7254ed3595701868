"""The bench's py-spy folding (bench.peers_sample): its doctests, and a real py-spy raw line."""

from __future__ import annotations

import doctest

import bench.peers_sample as ps


def test_doctests() -> None:
    result = doctest.testmod(ps, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6 and result.failed == 0


def test_a_py_spy_raw_line() -> None:
    # as py-spy 0.4 writes it (`record --format raw`): outermost frame first, a count last
    line = ("<module> (/v/bench/peers_run.py:243);main (/v/bench/peers_run.py:222);"
            "BaseEventLoop.run_forever (/py/asyncio/base_events.py:608);"
            "BaseEventLoop._run_once (/py/asyncio/base_events.py:1922);"
            "Handle._run (/py/asyncio/events.py:80);"
            "NodeRunner.process (/v/doa/runtime/runner.py:140);"
            "NodeRunner._decode (/v/doa/runtime/runner.py:182);"
            "NodeRunner._decode (/v/doa/runtime/runner.py:183) 7")
    samples, idle, inclusive, own = ps.fold([line, "main (/v/bench/peers_run.py:222) 5"])
    assert (samples, idle) == (7, 0)
    assert inclusive == {"Handle._run (events.py)": 7, "NodeRunner.process (runner.py)": 7,
                         "NodeRunner._decode (runner.py)": 7}  # counted once, not twice
    assert own == {"NodeRunner._decode (runner.py)": 7}
