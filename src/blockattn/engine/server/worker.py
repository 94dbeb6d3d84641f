"""The model thread: all model work runs here, and running generations are decoded together.

Why one dedicated thread: torch work must never run on the event loop (it would freeze every other client,
`/health` included), and requests must not interleave on one model unsynchronised (GPU memory, adapter on/off
state). Why batching: decoding reads every weight once per step whoever asks, so one step for all running
generations (`service.decode_step`) costs little more than one for a single request; run one after another,
32 clients would each wait for the 31 others' whole answers.

The loop: take new jobs (waiting for one when idle; otherwise at most `admit_per_step` between two decode
steps, so running generations keep moving while a burst of arrivals is prefilled), start them together (every
prefill queued on the device first, then every first token decided, greedy ones by one argmax: the host prepares
one request while the GPU computes the one before), then one batched decode step over every running generation
(at most `max_batch` per forward). Plain
jobs (`submit`) run to completion when taken. The queue is bounded, so overload is a fast 429 rather than
unbounded memory; a generation whose client went away is cancelled between tokens (or skipped before it
starts), so no worker time is spent on nobody.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from blockattn.engine.service import Generation, decode_step, greedy_first_tokens


class QueueFull(Exception):
    pass


@dataclass
class _Running:
    generation: Generation
    on_delta: Callable[[str], None]
    future: Future
    queued: float  # seconds it waited before starting
    started: float  # perf_counter when it started

    def emit(self, delta: str) -> None:
        if delta:
            self.on_delta(delta)


class ModelWorker:
    def __init__(self, max_queue: int = 256, max_batch: int = 32, admit_per_step: int = 4):
        self.max_batch, self.admit_per_step = max_batch, admit_per_step
        self._jobs: queue.Queue = queue.Queue(maxsize=max_queue)
        self._running: list[_Running] = []
        self._thread = threading.Thread(target=self._run, name="blockattn-model", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting to start (not counting running generations)."""
        return self._jobs.qsize()

    @property
    def running(self) -> int:
        """Generations started and not finished."""
        return len(self._running)

    def submit(self, fn: Callable[[float], object]) -> Future:
        """Run `fn(queued_seconds)` on the model thread; its result (or exception) lands in the future.
        Raises QueueFull when `max_queue` jobs are already waiting."""
        return self._put(fn)

    def submit_generation(self, generation: Generation, on_delta: Callable[[str], None]) -> Future:
        """Run `generation` on the model thread, batched with the others; each text delta goes to `on_delta`
        (called on the model thread, in order). The future's result is (queued seconds, started perf_counter)
        once it has finished; an exception (e.g. a UserError from prefill) lands in the future instead."""
        return self._put((generation, on_delta))

    def _put(self, job) -> Future:
        future: Future = Future()
        try:
            self._jobs.put_nowait((job, future, time.perf_counter()))
        except queue.Full:
            raise QueueFull from None
        return future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    # ---------------------------------------------------------------- the model thread
    def _run(self) -> None:
        while True:
            items, closing = [], False
            while len(items) < self.admit_per_step:
                try:  # idle: wait for the first job, then take what else is already waiting
                    item = self._jobs.get(block=not self._running and not items)
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                items.append(item)
            self._start_all(items)
            if closing:  # running generations end here, cancelled
                for run in self._running:
                    self._end(run, run.generation.cancel_now())
                return
            if self._running:
                self._step()

    def _start_all(self, items: list) -> None:
        """Start the jobs taken together: plain jobs run, generations begin (prefill), then their first tokens."""
        begun: list[_Running] = []
        for job, future, queued_at in items:
            if not future.set_running_or_notify_cancel():
                continue
            queued = time.perf_counter() - queued_at
            if callable(job):
                try:
                    future.set_result(job(queued))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, never kills the thread
                    future.set_exception(exc)
                continue
            generation, on_delta = job
            run = _Running(generation, on_delta, future, queued, time.perf_counter())
            try:
                generation.begin()
            except BaseException as exc:  # noqa: BLE001
                future.set_exception(exc)
                continue
            if generation.done:  # cancelled while queued
                self._end(run, "")
            else:
                begun.append(run)
        if not begun:
            return
        try:
            greedy = greedy_first_tokens([run.generation for run in begun])
        except BaseException:  # noqa: BLE001 - each request then decides its own (a failure stays with it)
            greedy = {}
        for run in begun:
            try:
                delta = run.generation.first(greedy.get(id(run.generation)))
            except BaseException as exc:  # noqa: BLE001
                run.generation.done = True
                run.future.set_exception(exc)
                continue
            if run.generation.done:
                self._end(run, delta)
            else:
                run.emit(delta)
                self._running.append(run)

    def _step(self) -> None:
        """One token more for every running generation; finished ones leave."""
        for run in self._running:
            if run.generation.cancel.is_set():
                self._end(run, run.generation.cancel_now())
        running = [r for r in self._running if not r.generation.done]
        for lo in range(0, len(running), self.max_batch):
            chunk = running[lo:lo + self.max_batch]
            try:
                deltas = decode_step([r.generation for r in chunk])
            except BaseException as exc:  # noqa: BLE001 - those requests fail; the thread and the others go on
                for run in chunk:
                    run.generation.done = True
                    run.future.set_exception(exc)
                continue
            for run, delta in zip(chunk, deltas):
                if run.generation.done:
                    self._end(run, delta)
                else:
                    run.emit(delta)
        self._running = [r for r in self._running if not r.generation.done]

    def _end(self, run: _Running, tail: str) -> None:
        run.emit(tail)
        run.generation.done = True
        if not run.future.done():
            run.future.set_result((run.queued, run.started))
