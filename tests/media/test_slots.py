"""RecordingSlots: a node refuses or queues recordings beyond its limit."""

from __future__ import annotations

import asyncio

import pytest

from media.recorder import RecordingSlots, RecordingSlotsFull


async def test_a_full_node_refuses_at_once_and_a_freed_slot_can_be_taken_again() -> None:
    slots = RecordingSlots(2)
    first, second = slots.try_acquire(), slots.try_acquire()
    with pytest.raises(RecordingSlotsFull, match="all 2 recording slots are in use"):
        slots.try_acquire()
    first.release()
    first.release()  # idempotent: does not free a second slot
    assert slots.available == 1
    third = slots.try_acquire()
    assert slots.available == 0
    second.release()
    third.release()
    assert slots.in_use == 0


async def test_waiters_get_slots_in_arrival_order() -> None:
    slots = RecordingSlots(1)
    held = await slots.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        async with await slots.acquire():
            order.append(name)

    tasks = [asyncio.create_task(wait(n)) for n in ("a", "b", "c")]
    await asyncio.sleep(0)
    with pytest.raises(RecordingSlotsFull):
        slots.try_acquire()  # no jumping the queue
    held.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert slots.in_use == 0


async def test_a_waiter_that_gives_up_does_not_leak_its_slot() -> None:
    slots = RecordingSlots(1)
    held = slots.try_acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await slots.acquire()
    held.release()
    assert slots.in_use == 0
    assert slots.try_acquire() is not None


async def test_a_slot_handed_to_a_cancelled_waiter_passes_on() -> None:
    slots = RecordingSlots(1)
    held = slots.try_acquire()
    loser = asyncio.create_task(slots.acquire())
    winner = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    held.release()  # hands the slot to `loser`'s future ...
    loser.cancel()  # ... which is cancelled before it runs
    slot = await winner
    with pytest.raises(asyncio.CancelledError):
        await loser
    assert slots.in_use == 1
    slot.release()
    assert slots.in_use == 0
