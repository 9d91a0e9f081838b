"""Stopping background tasks: a lost cancellation must not hang a shutdown."""

from __future__ import annotations

import asyncio

import pytest

from media.tasks import cancel_and_wait


async def _swallows_once(queue: asyncio.Queue[int], ready: asyncio.Event) -> None:
    try:
        ready.set()
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        pass  # the bug being guarded against: the cancellation is lost here
    await queue.get()  # and the loop goes back to waiting on its queue


async def test_a_swallowed_cancellation_is_repeated(caplog: pytest.LogCaptureFixture) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(_swallows_once(asyncio.Queue(), ready), name="service")
    await ready.wait()
    await asyncio.wait_for(cancel_and_wait(task, patience_s=0.05), 5)
    assert task.cancelled()
    assert "task service ignored its cancellation" in caplog.text


async def test_a_plain_task_stops_at_the_first_cancellation(
        caplog: pytest.LogCaptureFixture) -> None:
    task = asyncio.create_task(asyncio.Queue[int]().get())
    await asyncio.sleep(0)
    await cancel_and_wait(task, patience_s=10)
    assert task.cancelled() and "ignored" not in caplog.text


async def test_none_done_and_failed_tasks(caplog: pytest.LogCaptureFixture) -> None:
    await cancel_and_wait(None)

    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.sleep(0.01)
    await cancel_and_wait(task)  # consumed and logged, not raised
    assert "task failing had failed" in caplog.text


async def test_the_callers_own_cancellation_propagates() -> None:
    stubborn = asyncio.create_task(_swallows_once(asyncio.Queue(), asyncio.Event()))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(stubborn, patience_s=3600))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not stubborn.done()  # swallowed the one cancellation it got
    stubborn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stubborn
