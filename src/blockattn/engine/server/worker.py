"""The model thread: all model work runs here, and running generations are decoded together.

Why one dedicated thread: torch work must never run on the event loop (it would freeze every other client,
`/health` included), and requests must not interleave on one model unsynchronised (GPU memory, adapter on/off
state). Why batching: decoding reads every weight once per step whoever asks, so one step for all running
generations (`service.decode_step`) costs little more than one for a single request; run one after another,
32 clients would each wait for the 31 others' whole answers.

The loop: take new jobs (waiting for one when idle; otherwise at most `admit_per_step` between two decode
steps, so running generations keep moving while a burst of arrivals is prefilled), compute the context blocks
those requests miss as one batched prefill (`service.prefill_together`), start them (each prefill
queued on the device, the one before it then given its first token: the host prepares one request while the
GPU computes the one before), then one batched decode step over every running generation (at most `max_batch`
per forward). Plain
jobs (`submit`) run to completion when taken. The queue is bounded, so overload is a fast 429 rather than
unbounded memory; a generation whose client went away is cancelled between tokens (or skipped before it
starts), so no worker time is spent on nobody.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from blockattn.engine.service import Generation, decode_step, prefill_together

log = logging.getLogger("blockattn.serve")


# The model thread (mostly Python launching kernels) and the event loop that streams tokens share the GIL, and
# Python hands it over every 5 ms by default: a token the model thread had produced could wait that long to be
# sent. At 0.5 ms, the streamed request's client TTFT minus its server-side time (tokenize + queue + prefill)
# fell from 3.96 to 3.22 ms p50 (tiny model on 2 CPU cores, 56 HotpotQA paragraphs a request, 3 alternating
# runs of 75 requests each way, 2026-12-04); on a GPU the model thread holds the GIL more of the time.
SWITCH_INTERVAL_S = 0.0005


def tune_interpreter() -> None:
    """Settings for a process that runs a model thread (process-wide, so `serve` and the engine process set
    them, not `create_app`)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


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
    def __init__(self, max_queue: int = 256, max_batch: int = 32, admit_per_step: int = 4,
                 flush: Callable[[], None] = lambda: None, group_prefill: bool | None = False):
        """`flush`: called after each batch of starts and each decode step, and before any future is settled,
        so that a relay collecting the deltas of a step (`relay.DeltaRelay`) hands them on in order.
        `group_prefill`: the missing blocks of the requests taken together are computed as one batched prefill
        before the first of them begins (`service.prefill_together`), instead of one prefill each; None: where
        the engine packs blocks (CUDA, bf16/fp16), False (the default: it did not pay on an H100, see
        `prefill_together`): never."""
        self.max_batch, self.admit_per_step, self.group_prefill = max_batch, admit_per_step, group_prefill
        self._flush = flush
        self.seconds = {"admit": 0.0, "decode": 0.0, "idle": 0.0}  # the model thread's wall time, by what it did
        self.loops = self.admitted = self.decode_steps = 0
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
            waited = time.perf_counter()
            while len(items) < self.admit_per_step:
                try:  # idle: wait for the first job, then take what else is already waiting
                    item = self._jobs.get(block=not self._running and not items)
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                items.append(item)
            admitting = time.perf_counter()
            self._start_all(items)
            decoding = time.perf_counter()
            if closing:  # running generations end here, cancelled
                for run in self._running:
                    self._end(run, run.generation.cancel_now())
                return
            if self._running:
                self._step()
                self.decode_steps += 1
            self.loops += 1
            self.admitted += len(items)
            self.seconds["idle"] += admitting - waited
            self.seconds["admit"] += decoding - admitting
            self.seconds["decode"] += time.perf_counter() - decoding

    def _start_all(self, items: list) -> None:
        """Start the jobs taken together: plain jobs run; generations begin (prefill queued) one after another,
        each one's first token decided once the next one has begun. So the host prepares a prefill while the
        device runs the one before, and no request waits for the prefills admitted after it: deciding every first
        token at the end (one argmax for all) made the first of 4 admitted wait for the other three's host work,
        which is most of a cached block-mode prefill."""
        items = [item for item in items if item[1].set_running_or_notify_cancel()]
        if self.group_prefill is not False:
            self._prefill_together([job[0] for job, _future, _queued in items if not callable(job)],
                                   always=bool(self.group_prefill))
        pending: _Running | None = None
        for job, future, queued_at in items:
            queued = time.perf_counter() - queued_at
            if callable(job):
                try:
                    result = job(queued)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request, never kills the thread
                    self._fail(future, exc)
                else:
                    future.set_result(result)
                continue
            generation, on_delta = job
            run = _Running(generation, on_delta, future, queued, time.perf_counter())
            try:
                generation.begin()
            except BaseException as exc:  # noqa: BLE001
                self._fail(future, exc)
                continue
            if generation.done:  # cancelled while queued
                self._end(run, "")
                continue
            if pending is not None:
                self._first(pending)
            pending = run
        if pending is not None:
            self._first(pending)

    @staticmethod
    def _prefill_together(generations: list[Generation], always: bool) -> None:
        """Shared block prefill of the generations about to begin. Best effort: should it fail (out of memory,
        say), each request's own prefill computes its blocks as before, and fails on its own if it must."""
        try:
            prefill_together(generations, always)
        except Exception:  # noqa: BLE001 - the requests go on without it
            log.warning("prefilling the admitted requests' blocks together failed; each prefills its own",
                        exc_info=True)

    def _first(self, run: _Running) -> None:
        """A begun generation's first token (waits for its prefill), handed on at once."""
        try:
            delta = run.generation.first()
        except BaseException as exc:  # noqa: BLE001
            run.generation.done = True
            self._fail(run.future, exc)
            return
        if run.generation.done:
            self._end(run, delta)
        else:
            run.emit(delta)
            self._running.append(run)
            self._flush()

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
                    self._fail(run.future, exc)
                continue
            for run, delta in zip(chunk, deltas):
                if run.generation.done:
                    self._end(run, delta)
                else:
                    run.emit(delta)
        self._running = [r for r in self._running if not r.generation.done]
        self._flush()

    def _end(self, run: _Running, tail: str) -> None:
        run.emit(tail)
        run.generation.done = True
        if not run.future.done():
            self._flush()  # its deltas first: the end must not overtake them
            run.future.set_result((run.queued, run.started))

    def _fail(self, future: Future, exc: BaseException) -> None:
        self._flush()
        future.set_exception(exc)
