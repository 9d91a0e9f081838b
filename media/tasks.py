"""Stopping background asyncio tasks (used by ``media`` and by ``server``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

PATIENCE_S = 2.0


async def cancel_and_wait(task: asyncio.Task[Any] | None, *, name: str = "",
                          patience_s: float = PATIENCE_S) -> None:
    """Cancel ``task`` and return once it has ended (None or already done: at once).

    A cancellation can be lost: code below the task may catch ``CancelledError`` (or
    Python 3.11's ``wait_for`` may drop it when its inner future finishes at the same
    moment), and a service loop then goes back to waiting on its queue for ever — a
    shutdown that never ends. So the cancellation is repeated every ``patience_s``
    seconds until the task is done, with a warning naming it. The task's own outcome
    (cancelled, an exception) is consumed here and logged, never raised; if the caller
    itself is cancelled meanwhile, that cancellation propagates as usual.
    """
    if task is None or task.done():
        _consume(task, name)
        return
    tries = 0
    while not task.done():
        if tries:
            log.warning("task %s ignored its cancellation; cancelling it again",
                        name or task.get_name())
        task.cancel()
        tries += 1
        await asyncio.wait({task}, timeout=patience_s)
    _consume(task, name)


def _consume(task: asyncio.Task[Any] | None, name: str) -> None:
    if task is None or task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s had failed: %r", name or task.get_name(), exc, exc_info=exc)
