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
from rich.markup import escape

__all__ = ["err", "out", "say", "tables"]

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
PIPE_WIDTH = 200  # a table printed to a pipe or a file: as wide as it needs, up to this


def tables() -> Console:
    """``out`` on a terminal (its width); in a pipe or a file a console ``PIPE_WIDTH`` wide,
    so a table's rows stay one line each (rich takes 80 columns when it sees no terminal).

    >>> import io
    >>> from contextlib import redirect_stdout
    >>> from rich.table import Table
    >>> t = Table("version", "note")
    >>> t.add_row("1", "a note " * 14)
    >>> with redirect_stdout(io.StringIO()) as seen:
    ...     tables().print(t)
    >>> max(len(line) for line in seen.getvalue().splitlines()) > 80
    True
    """
    if out.is_terminal:
        return out
    return Console(file=out.file, width=PIPE_WIDTH, highlight=False, soft_wrap=True,
                   emoji=False)


def say(line: str) -> None:
    """A notice (a warning, a broker status line) on stderr as it is, with no markup read
    into it: the ``say`` of :func:`doa.engines.launch.run` and ``prepare`` for a command."""
    err.print(escape(line))
