"""Text deltas from the model thread to the event loop: handed over once per model step, not once per token.

Why: a thread-safe hand-over (`loop.call_soon_threadsafe`) wakes the event loop by writing to its self-pipe,
and that write drops the GIL. With one hand-over per token, a decode step over 64 streams gave the GIL away
64 times, and each time the model thread could only take it back once the event loop let go of it (up to a
switch interval later). Collected during the step and handed over together, it is one wake-up per step.

Order: the worker flushes before it settles a request's future, so every delta reaches the request's queue
before the loop learns that the request ended.
"""

from __future__ import annotations

import asyncio
import threading


class DeltaRelay:
    def __init__(self) -> None:
        self._pending: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue, object]] = []
        self._lock = threading.Lock()

    def sink(self, events: asyncio.Queue):
        """A per-request `on_delta` for the worker (call on the event loop that reads `events`): each delta goes,
        at the next flush, into `events` as ("delta", text), on that loop."""
        loop = asyncio.get_running_loop()

        def push(delta: str) -> None:
            with self._lock:
                self._pending.append((loop, events, ("delta", delta)))

        return push

    def flush(self) -> None:
        """Hand everything pushed so far to its event loop, in one call per loop (from the model thread)."""
        with self._lock:
            batch, self._pending = self._pending, []
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, object]]] = {}
        for loop, events, item in batch:
            by_loop.setdefault(loop, []).append((events, item))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop has closed (server shutting down): nobody is listening any more
                pass


def _deliver(items: list[tuple[asyncio.Queue, object]]) -> None:
    for events, item in items:
        events.put_nowait(item)
