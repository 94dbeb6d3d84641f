"""SSE chunks: a stream's deltas waiting together go out as one chunk, nothing lost, the end never early."""

import asyncio

from blockattn.engine.server.app import next_text


def test_waiting_deltas_join_and_the_end_comes_after_them():
    async def run():
        events: asyncio.Queue = asyncio.Queue()
        for item in (("delta", "Ro"), ("delta", "bert"), ("delta", " Stevenson")):
            events.put_nowait(item)
        first = await next_text(events)  # the loop fell behind: three steps' deltas at once
        events.put_nowait(("delta", "."))
        second = await next_text(events)  # it keeps up: one delta, one chunk
        events.put_nowait(("delta", ""))
        events.put_nowait(("end", None))
        third = await next_text(events)  # the last delta and the end together
        events.put_nowait(("end", None))
        fourth = await next_text(events)
        return first, second, third, fourth

    assert asyncio.run(run()) == (("Robert Stevenson", False), (".", False), ("", True), (None, True))


def test_a_delta_that_arrives_later_is_awaited():
    async def run():
        events: asyncio.Queue = asyncio.Queue()
        asyncio.get_running_loop().call_later(0.01, events.put_nowait, ("delta", "late"))
        return await next_text(events)

    assert asyncio.run(run()) == ("late", False)
