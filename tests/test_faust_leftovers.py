"""After the Faust engine's nodes stop, library tasks an app left running are cancelled until
they end (:func:`doa.engines.faust_app.abandon_leftovers`): a task of mode's that swallows a
cancel and waits again kept ``asyncio.run`` waiting forever (a CI run hung there)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from doa.engines.faust_app import abandon_leftovers

# a coroutine whose code says it is mode's, as a Faust app's service tasks are
SOURCE = '''
async def stubborn(gone, times):
    for _ in range(times):  # as a service stopping its children under asyncio.shield
        try:
            await gone
        except asyncio.CancelledError:
            pass
    await gone
'''


def _library_coroutine() -> Any:
    env: dict[str, Any] = {"asyncio": asyncio}
    exec(compile(SOURCE, f"{os.sep}site-packages{os.sep}mode{os.sep}services.py", "exec"), env)
    return env["stubborn"]


def test_a_task_that_swallows_cancels_is_ended_and_others_are_left() -> None:
    stubborn = _library_coroutine()

    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        theirs = asyncio.create_task(stubborn(loop.create_future(), 3))  # the caller's
        spared = asyncio.all_tasks()
        left = asyncio.create_task(stubborn(loop.create_future(), 3))
        mine = asyncio.create_task(asyncio.sleep(3600))  # not a library's
        await asyncio.sleep(0)
        await abandon_leftovers(spared)
        result = (left.cancelled(), theirs.done(), mine.done())
        mine.cancel()
        await abandon_leftovers(set())  # theirs too, now
        await asyncio.wait({theirs, mine}, timeout=1)
        return result

    assert asyncio.run(main()) == (True, False, False)
