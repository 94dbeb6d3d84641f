"""The OpenAI-compatible HTTP API over a `Service`.

    POST /v1/chat/completions   chat; `stream: true` → server-sent events
    POST /v1/completions        raw prompt completion; `stream: true` → server-sent events
    GET  /v1/models[/{id}]      the served model ("default" is an alias)
    GET  /health                liveness (never waits for the model)
    GET  /metrics               Prometheus text

Request life: the event loop parses and validates (4xx on any problem), tokenizes in a thread pool (4xx on
"context too long" and friends, before any response starts -- streaming included), then hands the generation
to the single model thread (`worker.ModelWorker`, which decodes running generations together) and relays its
text. Every response's `usage` carries
`"blockattn": {"cached_blocks", "computed_blocks", "ttft_ms", "queue_ms", "timings_ms"}` (timings_ms: where the
time before the first token went, `service.Usage.timings_ms`, and "accept": from the request's arrival until the
model thread had it -- read, validated, tokenized).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from blockattn.engine.engine import ContextTooLong
from blockattn.engine.sampling import SamplingParams
from blockattn.engine.server.errors import APIError, error_body
from blockattn.engine.server.metrics import Metrics
from blockattn.engine.server.engineproc import EngineProcess, EngineUnavailable
from blockattn.engine.server.local import LocalEngine
from blockattn.engine.server.schemas import ChatRequest, CompletionRequest, parse
from blockattn.engine.server.worker import QueueFull
from blockattn.engine.service import Generation, Service
from blockattn.errors import UserError

log = logging.getLogger("blockattn.server")

ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics")
DEFAULT_ALIAS = "default"


class _CountRequests:
    """ASGI middleware: count every HTTP response by route and status (a pure ASGI wrapper, so streaming
    responses pass through untouched)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        endpoint = next((r for r in ROUTES if path == r or path.startswith(r + "/")), "other")
        status = 500

        async def send_counting(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()


async def _read_json(request: Request, max_bytes: int):
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise APIError(413, f"request body larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise APIError(413, f"request body larger than {max_bytes} bytes")
    if not body:
        raise APIError(400, "empty request body; expected a JSON object")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"malformed JSON body: {exc}") from None
    except RecursionError:  # found by the fuzzer (issue 13): "[[[[...]]]]" thousands deep
        raise APIError(400, "malformed JSON body: nested too deeply") from None


def _sse(payload: dict | str) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


class _Format:
    """The OpenAI response shapes of one endpoint."""

    def __init__(self, chat: bool, model: str):
        self.chat, self.model = chat, model
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _envelope(self, obj: str, choices: list, usage: dict | None) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices, "usage": usage}

    def full(self, text: str, finish_reason: str, usage: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish_reason}
            return self._envelope("chat.completion", [choice], usage)
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("text_completion", [choice], usage)

    def chunk(self, text: str | None, finish_reason: str | None = None, usage: dict | None = None,
              role: bool = False) -> dict:
        if self.chat:
            delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return self._envelope("chat.completion.chunk", [choice], usage)
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("text_completion", [choice], usage)

    def usage_chunk(self, usage: dict) -> dict:
        return self._envelope("chat.completion.chunk" if self.chat else "text_completion", [], usage)


async def next_text(events: asyncio.Queue) -> tuple[str | None, bool]:
    """The text of a stream's next SSE chunk: its next delta joined with every delta already waiting behind it,
    and whether its end came too. Under load the event loop falls behind the model, several steps' deltas of a
    stream queue up, and one chunk for all of them is one write instead of one per token; when the loop keeps up
    it is one delta, as before. (None, True) at the end with nothing before it."""
    kind, delta = await events.get()
    if kind != "delta":
        return None, True
    parts = [delta]
    while not events.empty():
        kind, delta = events.get_nowait()
        if kind != "delta":
            return "".join(parts), True
        parts.append(delta)
    return "".join(parts), False


def create_app(service: Service, api_key: str | None = None, max_queue: int = 256, max_batch: int = 32,
               max_body_bytes: int = 16 << 20, engine: EngineProcess | None = None,
               admit_per_step: int = 4, group_prefill: bool | None = False) -> FastAPI:
    """The FastAPI app. Model work runs on one worker thread (running generations decoded together, at most
    `max_batch` per forward, at most `admit_per_step` new ones started between two decode steps, their missing
    blocks prefilled together as `worker.ModelWorker`'s `group_prefill` says), started here and
    stopped at shutdown: in this process (`local.LocalEngine`), or, given `engine`, in the engine process it stands
    for (`service` is then its `front_service()`)."""
    if engine is None:
        model = local = LocalEngine(service, max_queue, max_batch, admit_per_step, group_prefill)
        metrics = Metrics(service.engine.store, lambda: local.worker.depth, service.engine, local.worker)
    else:
        model = engine
        metrics = Metrics()  # the engine's own metrics come from its process at each scrape
    model_names = (service.model_name, DEFAULT_ALIAS)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        model.close()

    app = FastAPI(title="blockattn", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_CountRequests, metrics=metrics)

    # ---------------------------------------------------------------- errors: always the OpenAI body
    @app.exception_handler(APIError)
    async def _api_error(_request, exc: APIError):
        return exc.response()

    @app.exception_handler(UserError)
    async def _user_error(_request, exc: UserError):
        code = "context_length_exceeded" if isinstance(exc, ContextTooLong) else None
        return APIError(400, str(exc), code=code).response()

    @app.exception_handler(EngineUnavailable)
    async def _engine_gone(_request, exc: EngineUnavailable):
        return APIError(503, f"{exc}; the server cannot generate until it is restarted", type="server_error",
                        code="engine_unavailable").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc: StarletteHTTPException):
        message = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return JSONResponse(error_body(message, code=str(exc.status_code)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc: RequestValidationError):
        return APIError(400, str(exc.errors()[0].get("msg", "invalid request"))).response()

    @app.exception_handler(Exception)
    async def _bug(_request, exc: Exception):
        log.exception("internal error", exc_info=exc)
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", type="server_error"),
                            status_code=500)

    # ---------------------------------------------------------------- helpers
    def check_auth(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "invalid or missing API key (Authorization: Bearer <key>)", code="invalid_api_key")

    def check_model(name: str) -> None:
        if name not in model_names:
            raise APIError(404, f"model {name!r} does not exist; this server serves {service.model_name!r} "
                                f"(alias {DEFAULT_ALIAS!r})", param="model", code="model_not_found")

    async def submit(generation: Generation, on_delta) -> asyncio.Future:
        try:
            return await model.submit(generation, on_delta)
        except QueueFull:
            raise APIError(429, "the server is busy (generation queue full); retry later",
                           type="rate_limit_error", code="server_busy") from None

    def usage_of(generation: Generation, queued: float) -> dict:
        usage = generation.usage.openai()
        usage["blockattn"]["queue_ms"] = round(queued * 1e3, 3)
        # from the request's arrival to its hand-over to the model thread (read, validated, tokenized)
        usage["blockattn"]["timings_ms"]["accept"] = round(generation.accept_ms, 3)
        return usage

    def observe(generation: Generation, arrived: float, started: float) -> None:
        metrics.ttft.observe(started - arrived + generation.usage.ttft_ms / 1e3)
        metrics.latency.observe(time.perf_counter() - arrived)
        metrics.prompt_tokens.inc(generation.usage.prompt_tokens)
        metrics.generated_tokens.inc(generation.usage.completion_tokens)

    async def respond(generation: Generation, fmt: _Format, stream: bool, include_usage: bool, arrived: float):
        if not stream:
            pieces: list[str] = []
            pending = await submit(generation, pieces.append)
            try:
                queued, started = await pending
            except asyncio.CancelledError:  # the client went away: stop generating for nobody
                generation.cancel.set()
                raise
            observe(generation, arrived, started)
            return fmt.full("".join(pieces), generation.finish_reason, usage_of(generation, queued))

        events: asyncio.Queue = asyncio.Queue()
        pending = await submit(generation, model.relay.sink(events))
        # scheduled after every delta already handed to the loop (the worker flushes the relay before it settles
        # a future), so the end never overtakes a delta
        pending.add_done_callback(lambda _f: events.put_nowait(("end", None)))

        async def sse():
            try:
                yield _sse(fmt.chunk(None, role=True) if fmt.chat else fmt.chunk(""))
                ended = False
                while not ended:
                    text, ended = await next_text(events)
                    if text is not None:
                        yield _sse(fmt.chunk(text))
                try:
                    queued, started = pending.result()
                except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band
                    log.exception("generation failed", exc_info=exc)
                    status = 400 if isinstance(exc, UserError) else 500
                    yield _sse(error_body(str(exc), type="invalid_request_error" if status == 400 else "server_error"))
                    yield _sse("[DONE]")
                    return
                observe(generation, arrived, started)
                usage = usage_of(generation, queued)
                yield _sse(fmt.chunk(None, generation.finish_reason, usage))
                if include_usage:
                    yield _sse(fmt.usage_chunk(usage))
                yield _sse("[DONE]")
            finally:
                generation.cancel.set()  # no-op when finished; stops the model thread if the client left

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def sampling_of(req) -> SamplingParams:
        return SamplingParams(temperature=req.temperature, top_p=req.top_p, seed=req.seed)

    # ---------------------------------------------------------------- routes
    @app.get("/health")
    async def health():
        try:
            state = await model.call("state", timeout=5.0)
        except (asyncio.TimeoutError, EngineUnavailable) as exc:  # the engine process is gone or stuck
            return JSONResponse({"status": "unavailable", "model": service.model_name,
                                 "error": str(exc) or "the engine process did not answer"}, status_code=503)
        return {"status": "ok", "model": service.model_name, "adapter": service.adapter_name, "mode": service.mode,
                **state}

    @app.get("/metrics")
    async def prometheus():
        text = generate_latest(metrics.registry).decode()
        if engine is not None:  # the engine's own metrics (cache, graphs, model thread) live in its process
            try:
                text += await engine.call("metrics")
            except (asyncio.TimeoutError, EngineUnavailable) as exc:
                log.warning("engine metrics unavailable: %s", exc)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    def model_card(name: str) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "blockattn"}

    @app.get("/v1/models")
    async def list_models(request: Request):
        check_auth(request)
        return {"object": "list", "data": [model_card(n) for n in model_names]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request):
        check_auth(request)
        check_model(model_id)
        return model_card(model_id)

    async def handle(request: Request, schema, build_prompt, chat: bool):
        """Validate → tokenize (thread pool) → generate (model thread) → respond."""
        arrived = time.perf_counter()
        check_auth(request)
        req = parse(schema, await _read_json(request, max_body_bytes))
        check_model(req.model)
        sampling = sampling_of(req)
        def prepare():  # one hop to the thread pool, not two: each waits for the GIL while the model thread runs
            return model.prepare(service, build_prompt(req), sampling, req.new_tokens, req.stop_list)

        generation = await run_in_threadpool(prepare)
        generation.accept_ms = (time.perf_counter() - arrived) * 1e3
        return await respond(generation, _Format(chat, service.model_name), req.stream, req.include_usage, arrived)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        def build(req: ChatRequest):
            return service.chat_prompt([m.as_chat() for m in req.messages], req.document_texts, req.segment)

        return await handle(request, ChatRequest, build, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        def build(req: CompletionRequest):
            return service.completion_prompt(req.prompt_input, req.document_texts, req.segment)

        return await handle(request, CompletionRequest, build, chat=False)

    return app
