"""The model in a process of its own (`blockattn serve --engine-process`): HTTP in one process, the model in another.

Why: in one process, the event loop (HTTP, JSON, SSE), the thread pool (tokenizing) and the model thread share
one GIL. The model thread is mostly Python launching kernels, so every request's parsing and every streamed
token competes with it for the interpreter. On the H200 at 8 concurrent clients, a block-mode request's client
TTFT was 48 ms where the server's own accounting came to ~32 (2026-12-04, `bench serve`). Here the front end
parses, validates and tokenizes, and only token ids cross to the engine process. Its main thread reads
requests while its model thread runs `worker.ModelWorker` as in one process. The engine process sends the text
deltas of a model step back in one message.

Pipe messages (pickled tuples). Front end → engine:
    ("gen", rid, Prompt, SamplingParams, max_tokens, stop)   answered ("accepted", rid) or ("busy", rid)
    ("cancel", rid)
    ("call", cid, "state" | "metrics")                      answered ("reply", cid, value)
    ("close",)
Engine → front end:
    ("ready", facts) | ("fatal", message, is_user_error)    once, at start
    ("deltas", [(rid, text), ...])                           one model step's text, in order
    ("done", rid, queued, started, Usage, finish_reason)     after its last deltas
    ("failed", rid, is_user_error, message)
Every send is made under one lock, and the worker flushes a step's deltas before it settles a request. So a
request's "done" never overtakes its text.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import signal
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from blockattn.engine.server.relay import DeltaRelay
from blockattn.engine.server.worker import ModelWorker, QueueFull, tune_interpreter
from blockattn.engine.service import Generation, Service, Usage
from blockattn.errors import UserError

log = logging.getLogger("blockattn.server")

START_TIMEOUT_S = 900  # loading (and converting, the first time) a model


@dataclass
class EngineFacts:
    """What the front end needs of the engine process's service to build and check prompts like it."""

    model_name: str
    adapter_name: str | None
    mode: str
    default_max_tokens: int
    limits: object  # limits.EngineLimits
    stop_ids: frozenset
    tokenizer: object


class EngineUnavailable(Exception):
    """The engine process is gone (it exited, or was killed): the server answers 503 until restarted."""


class RemoteFailure(Exception):
    """A request failed in the engine process; `user` when it was the request's fault (HTTP 400)."""

    def __init__(self, message: str, user: bool):
        super().__init__(message)
        self.user = user


class _Cancel:
    """`generation.cancel` of a remote generation: setting it tells the engine process."""

    def __init__(self, send):
        self._event, self._send = threading.Event(), send

    def set(self) -> None:
        if not self._event.is_set():
            self._event.set()
            self._send()

    def is_set(self) -> bool:
        return self._event.is_set()


class RemoteGeneration:
    """The front end's view of a generation running in the engine process: what the HTTP layer reads of a
    `service.Generation` (usage, finish reason, cancel, accept time)."""

    def __init__(self, rid: int, prompt, sampling, max_tokens: int, stop: list[str], cancel: _Cancel | None):
        self.rid, self.prompt, self.sampling, self.max_tokens, self.stop = rid, prompt, sampling, max_tokens, stop
        self.cancel = cancel  # set by `EngineProcess.prepare`, which needs the generation to build it
        self.usage = Usage(prompt_tokens=prompt.prompt_tokens)
        self.finish_reason: str | None = None
        self.accept_ms = 0.0


class EngineProcess:
    """The front end's handle on the engine process: start it, submit generations, relay their text."""

    def __init__(self, load: dict, max_queue: int = 256, max_batch: int = 32, admit_per_step: int = 4,
                 group_prefill: bool | None = False):
        """`load`: keyword arguments of `Service.load` (run in the engine process). Raises UserError when the
        model cannot be loaded there (the engine process's own message)."""
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA or threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=run_engine, args=(child, load, max_queue, max_batch, admit_per_step,
                                                                   group_prefill),
                                        name="blockattn-engine", daemon=True)
        self._process.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT_S):
            self._process.kill()
            raise UserError(f"the engine process did not start within {START_TIMEOUT_S} s")
        try:
            message = self._conn.recv()
        except EOFError:
            self._process.join(5)
            raise UserError(f"the engine process exited while starting (exit code {self._process.exitcode})") from None
        if message[0] == "fatal":
            self._process.join(30)
            if message[2]:
                raise UserError(message[1])
            raise RuntimeError(f"the engine process failed to start: {message[1]}")
        self.facts: EngineFacts = message[1]
        self.relay = DeltaRelay()
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._sinks: dict[int, object] = {}  # rid → on_delta
        self._done: dict[int, tuple[Future, RemoteGeneration]] = {}
        self._accepted: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._calls: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._dead: str | None = None
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="blockattn-engine-reader", daemon=True)
        self._reader.start()

    def front_service(self) -> Service:
        """A service that builds and checks prompts as the engine process's does, with no model."""
        f = self.facts
        return Service(None, f.tokenizer, f.model_name, f.adapter_name, f.default_max_tokens, f.mode,
                       limits=f.limits, stop_ids=f.stop_ids)

    # ---------------------------------------------------------------- requests
    def prepare(self, service: Service, prompt, sampling, max_tokens: int | None, stop) -> RemoteGeneration:
        """Checked like `Service.generate` (a 4xx before anything is sent on), not yet submitted."""
        checked = service.max_tokens_for(prompt, max_tokens)
        rid = next(self._ids)
        generation = RemoteGeneration(rid, prompt, sampling, checked, list(stop or []), None)

        def tell() -> None:  # nothing to stop once it has finished (the HTTP layer sets cancel at every end)
            if generation.finish_reason is None and self._dead is None:
                try:
                    self._send(("cancel", rid))
                except EngineUnavailable:  # gone: nothing left to stop
                    pass

        generation.cancel = _Cancel(tell)
        return generation

    async def submit(self, generation: RemoteGeneration, on_delta) -> asyncio.Future:
        """Hand `generation` to the engine process; once it is queued there, a future of (queued s, started)
        for its end (raises QueueFull when the engine's queue is full)."""
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()
        done: Future = Future()
        with self._lock:
            if self._dead:
                raise EngineUnavailable(self._dead)
            self._sinks[generation.rid] = on_delta
            self._done[generation.rid] = (done, generation)
            self._accepted[generation.rid] = (loop, accepted)
        try:
            self._send(("gen", generation.rid, generation.prompt, generation.sampling, generation.max_tokens,
                        generation.stop))
            await accepted
        except BaseException:
            with self._lock:
                self._sinks.pop(generation.rid, None)
                self._done.pop(generation.rid, None)
                self._accepted.pop(generation.rid, None)
            raise
        return asyncio.wrap_future(done)

    async def call(self, what: str, timeout: float = 10.0):
        """The engine process's answer to "state" ({"queue_depth", "running"}) or "metrics" (Prometheus text)."""
        loop = asyncio.get_running_loop()
        reply = loop.create_future()
        cid = next(self._ids)
        with self._lock:
            if self._dead:
                raise EngineUnavailable(self._dead)
            self._calls[cid] = (loop, reply)
        try:
            self._send(("call", cid, what))
            return await asyncio.wait_for(reply, timeout)
        finally:
            with self._lock:
                self._calls.pop(cid, None)

    def close(self) -> None:
        """Stop the engine process (running generations end cancelled); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._send(("close",))
        except EngineUnavailable:  # already gone
            pass
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._reader.join(5)
        self._conn.close()

    def _send(self, message) -> None:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError) as exc:  # broken pipe: the engine process died
            raise EngineUnavailable(self._dead or f"the engine process is gone ({exc})") from None

    # ---------------------------------------------------------------- the reader thread
    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._fail_all("the engine process exited")
                return
            kind = message[0]
            if kind == "deltas":
                with self._lock:
                    sinks = [(self._sinks.get(rid), text) for rid, text in message[1]]
                for sink, text in sinks:
                    if sink is not None:
                        sink(text)
                self.relay.flush()
            elif kind in ("done", "failed"):
                self._settle(message)
            elif kind in ("accepted", "busy"):
                with self._lock:
                    loop, future = self._accepted.pop(message[1], (None, None))
                if loop is not None:
                    outcome = None if kind == "accepted" else QueueFull()
                    loop.call_soon_threadsafe(_resolve, future, outcome)
            elif kind == "reply":
                with self._lock:
                    loop, future = self._calls.pop(message[1], (None, None))
                if loop is not None:
                    loop.call_soon_threadsafe(_resolve, future, None, message[2])

    def _settle(self, message) -> None:
        rid = message[1]
        with self._lock:
            self._sinks.pop(rid, None)
            done, generation = self._done.pop(rid, (None, None))
        if done is None:
            return
        if message[0] == "done":
            _, _, queued, started, usage, finish_reason = message
            generation.usage, generation.finish_reason = usage, finish_reason
            done.set_result((queued, started))
        else:
            done.set_exception(UserError(message[3]) if message[2] else RemoteFailure(message[3], user=False))

    def _fail_all(self, why: str) -> None:
        with self._lock:
            self._dead = why
            done, accepted, calls = list(self._done.values()), list(self._accepted.values()), list(self._calls.values())
            self._sinks.clear(), self._done.clear(), self._accepted.clear(), self._calls.clear()
        self.relay.flush()
        for future, _ in done:
            if not future.done():
                future.set_exception(EngineUnavailable(why))
        for loop, future in accepted + calls:
            try:
                loop.call_soon_threadsafe(_resolve, future, EngineUnavailable(why))
            except RuntimeError:
                pass
        if not self._closed:
            log.error("%s; requests in flight failed", why)


def _resolve(future: asyncio.Future, exception: BaseException | None, value=None) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(value)


# -------------------------------------------------------------------- the engine process
def run_engine(conn, load: dict, max_queue: int, max_batch: int, admit_per_step: int = 4,
               group_prefill: bool | None = False) -> None:
    """The engine process: load the service, then serve the front end's messages until told to close (or until
    the front end goes away)."""
    from prometheus_client import generate_latest

    from blockattn.engine.server.metrics import engine_registry

    # Ctrl-C, and `timeout` or a supervisor stopping the process group, reach us too: the front end shuts down
    # gracefully and then closes us, and we also end when its pipe closes (it died), so we ignore both signals
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tune_interpreter()
    try:
        service = Service.load(**load)
    except BaseException as exc:  # noqa: BLE001 - told to the front end, which exits with it
        conn.send(("fatal", str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}",
                   isinstance(exc, UserError)))
        return
    send_lock = threading.Lock()

    def send(message) -> None:
        try:
            with send_lock:
                conn.send(message)
        except (OSError, ValueError):  # the front end is gone (its pipe closed): the main loop ends on its own
            pass

    outbox: list[tuple[int, str]] = []
    outbox_lock = threading.Lock()

    def flush() -> None:  # on the model thread: one message per step
        with outbox_lock:
            batch = outbox[:]
            outbox.clear()
        if batch:
            send(("deltas", batch))

    worker = ModelWorker(max_queue, max_batch=max_batch, admit_per_step=admit_per_step, flush=flush,
                         group_prefill=group_prefill)
    registry = engine_registry(service.engine.store, lambda: worker.depth, service.engine, worker)
    running: dict[int, Generation] = {}

    def finished(rid: int, generation: Generation, future: Future) -> None:  # on the model thread
        running.pop(rid, None)
        exc = future.exception()
        if exc is None:
            queued, started = future.result()
            send(("done", rid, queued, started, generation.usage, generation.finish_reason))
        else:
            if not isinstance(exc, UserError):  # the front end only sees the message: the traceback stays here
                log.error("generation failed", exc_info=exc)
            send(("failed", rid, isinstance(exc, UserError), str(exc) or type(exc).__name__))

    facts = EngineFacts(service.model_name, service.adapter_name, service.mode, service.default_max_tokens,
                        service.limits, service.stop_ids, service.tokenizer)
    send(("ready", facts))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the front end is gone: nobody to answer
            break
        kind = message[0]
        if kind == "gen":
            _, rid, prompt, sampling, max_tokens, stop = message
            generation = Generation(service, prompt, sampling, max_tokens, stop)

            def on_delta(delta: str, rid: int = rid) -> None:
                with outbox_lock:
                    outbox.append((rid, delta))

            try:
                future = worker.submit_generation(generation, on_delta)
            except QueueFull:
                send(("busy", rid))
                continue
            running[rid] = generation
            send(("accepted", rid))
            future.add_done_callback(lambda f, rid=rid, g=generation: finished(rid, g, f))
        elif kind == "cancel":
            generation = running.get(message[1])
            if generation is not None:
                generation.cancel.set()
        elif kind == "call":
            _, cid, what = message
            value = ({"queue_depth": worker.depth, "running": worker.running} if what == "state"
                     else generate_latest(registry).decode())
            send(("reply", cid, value))
        elif kind == "close":
            break
    for generation in list(running.values()):
        generation.cancel.set()
    worker.close()
