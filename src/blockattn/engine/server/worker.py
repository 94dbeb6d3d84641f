"""The model thread: every generation runs here, one at a time, in arrival order.

Why one dedicated thread: torch work must never run on the event loop (it would freeze every other client,
`/health` included), and requests must not interleave on one model (GPU memory, adapter on/off state). The
queue is bounded, so overload is a fast 429 rather than unbounded memory; a job whose client went away is
cancelled between tokens (or skipped before it starts), so no worker time is spent on nobody.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable


class QueueFull(Exception):
    pass


class ModelWorker:
    def __init__(self, max_queue: int = 256):
        self._jobs: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="blockattn-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return self._jobs.qsize()

    def submit(self, fn: Callable[[float], object]) -> Future:
        """Run `fn(queued_seconds)` on the model thread; its result (or exception) lands in the future.
        Raises QueueFull when `max_queue` jobs are already waiting."""
        future: Future = Future()
        try:
            self._jobs.put_nowait((fn, future, time.perf_counter()))
        except queue.Full:
            raise QueueFull from None
        return future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future, queued_at = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(time.perf_counter() - queued_at))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, never kills the thread
                future.set_exception(exc)
