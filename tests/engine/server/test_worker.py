"""The model thread: arrival order, one at a time, bounded queue, exceptions returned not raised."""

import threading

import pytest

from blockattn.engine.server.worker import ModelWorker, QueueFull


def test_jobs_run_in_order_one_at_a_time_and_the_queue_is_bounded():
    worker = ModelWorker(max_queue=2)
    gate, order, running = threading.Event(), [], []

    def job(name):
        def run(queued):
            running.append(name)
            assert len(running) == 1
            gate.wait(10)
            order.append(name)
            running.remove(name)
            return name
        return run

    futures = [worker.submit(job(0))]
    while worker.depth:  # the first job has been picked up
        pass
    futures += [worker.submit(job(1)), worker.submit(job(2))]
    with pytest.raises(QueueFull):
        worker.submit(job(3))
    gate.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2] and order == [0, 1, 2]
    worker.close()


def test_an_exception_goes_to_the_caller_and_the_thread_survives():
    worker = ModelWorker()

    def boom(queued):
        raise ValueError("bad")

    with pytest.raises(ValueError):
        worker.submit(boom).result(timeout=10)
    assert worker.submit(lambda queued: 42).result(timeout=10) == 42
    worker.close()


def _prompts(service):
    docs = ["The lighthouse stands on a reef.", "Bees dance to share where food is.", "Curie was born in Warsaw."]
    return [service.rag_prompt(docs[:n], f"Question {n}?") for n in (1, 2, 3)] + [service.completion_prompt("Hi")]


def test_running_generations_are_decoded_together_with_the_same_output_as_alone(tiny_service, monkeypatch):
    from blockattn.engine.sampling import SamplingParams

    alone = [tiny_service.generate(p, SamplingParams(), 12).text() for p in _prompts(tiny_service)]
    sizes, real = [], tiny_service.engine.decode_batch
    monkeypatch.setattr(tiny_service.engine, "decode_batch",
                        lambda states, tokens: sizes.append(len(states)) or real(states, tokens))
    gate = threading.Event()
    worker = ModelWorker(admit_per_step=8)
    worker.submit(lambda queued: gate.wait(10))  # hold the thread until every generation is queued
    outputs = [[] for _ in alone]
    futures = [worker.submit_generation(tiny_service.generate(p, SamplingParams(), 12), outputs[i].append)
               for i, p in enumerate(_prompts(tiny_service))]
    gate.set()
    for f in futures:
        queued, started = f.result(timeout=60)
        assert queued >= 0 and started > 0
    worker.close()
    assert ["".join(o) for o in outputs] == alone
    # three block-mode requests share each step; the full-mode completion runs in its own forward
    assert max(sizes) == 3 and sizes.count(1) >= 1


def test_a_failing_generation_fails_alone_and_a_cancelled_one_stops(tiny_service):
    from blockattn.engine.sampling import SamplingParams

    worker = ModelWorker()
    bad = tiny_service.generate(tiny_service.completion_prompt("x"), SamplingParams(), 3)
    bad.prompt.query = []  # an empty query block: prefill refuses it
    with pytest.raises(Exception, match="empty"):
        worker.submit_generation(bad, lambda d: None).result(timeout=30)
    cancelled = tiny_service.generate(tiny_service.completion_prompt("x"), SamplingParams(), 200)
    seen = []

    def on_delta(delta):
        seen.append(delta)
        cancelled.cancel.set()

    worker.submit_generation(cancelled, on_delta).result(timeout=60)
    assert cancelled.finish_reason == "cancelled" and cancelled.usage.completion_tokens < 200
    good = tiny_service.generate(tiny_service.completion_prompt("x"), SamplingParams(), 4)
    worker.submit_generation(good, lambda d: None).result(timeout=30)
    assert good.finish_reason in ("length", "stop")
    worker.close()


def test_deltas_are_flushed_once_per_step_and_before_each_request_settles(tiny_service):
    """The relay hands a step's deltas to the event loop together (`relay.DeltaRelay`): the worker must flush
    after every step, and before it settles a future, or the end of a stream could overtake its last deltas."""
    from blockattn.engine.sampling import SamplingParams

    log: list[tuple] = []
    worker = ModelWorker(admit_per_step=8, flush=lambda: log.append(("flush",)))
    gate = threading.Event()
    worker.submit(lambda queued: gate.wait(10))
    prompts = _prompts(tiny_service)[:3]
    futures = []
    for i, p in enumerate(prompts):
        future = worker.submit_generation(tiny_service.generate(p, SamplingParams(), 6),
                                          lambda delta, i=i: log.append(("delta", i)))
        future.add_done_callback(lambda _f, i=i: log.append(("settled", i)))
        futures.append(future)
    gate.set()
    for f in futures:
        f.result(timeout=60)
    worker.close()
    for i in range(len(prompts)):
        settled = log.index(("settled", i))
        last_delta = max(k for k, entry in enumerate(log) if entry == ("delta", i))
        assert ("flush",) in log[last_delta:settled], f"request {i} settled before its deltas were flushed"
    # one flush per step for all three streams, not one per delta
    assert log.count(("flush",)) < sum(entry[0] == "delta" for entry in log)
    assert worker.decode_steps >= 5 and worker.admitted == 4 and worker.loops >= worker.decode_steps
    assert worker.seconds["admit"] > 0 and worker.seconds["decode"] > 0


def test_the_relay_delivers_in_order_on_the_loop_and_not_before_a_flush():
    import asyncio

    from blockattn.engine.server.relay import DeltaRelay

    async def main():
        relay, events = DeltaRelay(), asyncio.Queue()
        push = relay.sink(events)
        thread = threading.Thread(target=lambda: [push(t) for t in ("a", "b", "c")])
        thread.start()
        thread.join()
        await asyncio.sleep(0)
        assert events.empty()  # nothing crosses before the flush
        threading.Thread(target=relay.flush).start()
        got = [await asyncio.wait_for(events.get(), 5) for _ in range(3)]
        assert got == [("delta", "a"), ("delta", "b"), ("delta", "c")]

    asyncio.run(main())


@pytest.mark.parametrize("group_prefill", [True, False, None, "default"])
def test_requests_admitted_together_share_one_block_prefill(tiny_dir, monkeypatch, group_prefill):
    """The missing blocks of the requests taken in one admission are computed by one prefetch, before the first
    of them begins; the answers and the usage counts are those of the requests run one by one. None: only where
    blocks are packed without padding, which the CPU does not do; by default never (it did not pay on a GPU)."""
    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.service import Service

    service = Service.load(str(tiny_dir), adapter="none", device="cpu")
    prompts = _prompts(service)
    alone = [service.generate(p, SamplingParams(), 8).text() for p in prompts]
    service = Service.load(str(tiny_dir), adapter="none", device="cpu")  # a cold cache again
    groups, real = [], service.engine.prefetch
    monkeypatch.setattr(service.engine, "prefetch", lambda requests: groups.append(len(requests)) or real(requests))
    worker = ModelWorker(admit_per_step=8, **({} if group_prefill == "default" else {"group_prefill": group_prefill}))
    gate = threading.Event()
    worker.submit(lambda queued: gate.wait(10))
    generations = [service.generate(p, SamplingParams(), 8) for p in prompts]
    outputs = [[] for _ in prompts]
    futures = [worker.submit_generation(g, outputs[i].append) for i, g in enumerate(generations)]
    gate.set()
    for f in futures:
        f.result(timeout=60)
    worker.close()
    assert ["".join(o) for o in outputs] == alone
    # the three block-mode requests (the full-mode completion has no blocks to share)
    assert groups == ([3] if group_prefill is True else [])  # None: the CPU engine does not pack blocks
    computed = [g.usage.computed_blocks for g in generations[:3]]
    assert computed == [2, 1, 1]  # prefix + first document; then each new document, counted once
    assert sum(g.usage.cached_blocks + g.usage.computed_blocks for g in generations[:3]) == 2 + 3 + 4


def test_a_failing_group_prefill_leaves_each_request_to_prefill_its_own(tiny_dir, monkeypatch):
    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.service import Service

    service = Service.load(str(tiny_dir), adapter="none", device="cpu")
    calls = []
    monkeypatch.setattr(service.engine, "prefetch",
                        lambda requests: calls.append(1) or (_ for _ in ()).throw(RuntimeError("oom")))
    worker = ModelWorker(admit_per_step=8, group_prefill=True)
    gate = threading.Event()
    worker.submit(lambda queued: gate.wait(10))
    generations = [service.generate(p, SamplingParams(), 4) for p in _prompts(service)[:3]]
    futures = [worker.submit_generation(g, lambda d: None) for g in generations]
    gate.set()
    for f in futures:
        f.result(timeout=60)
    worker.close()
    assert calls == [1] and [g.usage.computed_blocks for g in generations] == [2, 1, 1]
