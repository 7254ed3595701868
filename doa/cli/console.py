"""The command line's two consoles: ``out`` for results (stdout), ``err`` for problems (stderr).

Every ``doa`` command prints through these two, so colours, wrapping and highlighting are set in
one place. Markup is on (``[red]error[/red]``); rich's automatic highlighting and emoji codes
are off (a stream named ``a:x:1`` stays that, not ``a❌1``), and long lines are not wrapped (a
line a user may copy stays one line).

Examples
--------
>>> from doa.cli.console import err, out
>>> (out.stderr, err.stderr)
(False, True)
>>> with out.capture() as seen:
...     out.print("event 'predictions:x:1'")
>>> print(seen.get(), end="")
event 'predictions:x:1'
"""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "out"]

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
