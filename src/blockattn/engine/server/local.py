"""The model in the server's own process (the default): the HTTP layer's side of `worker.ModelWorker`.

`engineproc.EngineProcess` is the other way, the model in a process of its own. Both answer the same
calls (prepare, submit, call, close, relay), so `app.create_app` serves either.
"""

from __future__ import annotations

import asyncio

from blockattn.engine.server.relay import DeltaRelay
from blockattn.engine.server.worker import ModelWorker
from blockattn.engine.service import Generation, Service


class LocalEngine:
    def __init__(self, service: Service, max_queue: int = 256, max_batch: int = 32, admit_per_step: int = 4,
                 group_prefill: bool | None = False):
        self.service = service
        self.relay = DeltaRelay()
        self.worker = ModelWorker(max_queue, max_batch=max_batch, admit_per_step=admit_per_step,
                                  flush=self.relay.flush, group_prefill=group_prefill)

    def prepare(self, service: Service, prompt, sampling, max_tokens: int | None, stop) -> Generation:
        return service.generate(prompt, sampling, max_tokens, stop)

    async def submit(self, generation: Generation, on_delta) -> asyncio.Future:
        """A future of (queued s, started perf_counter) for the generation's end; QueueFull when full."""
        return asyncio.wrap_future(self.worker.submit_generation(generation, on_delta))

    async def call(self, what: str, timeout: float = 10.0):
        if what == "state":
            return {"queue_depth": self.worker.depth, "running": self.worker.running}
        return ""  # metrics: this process's registry holds the engine's already

    def close(self) -> None:
        self.worker.close()
