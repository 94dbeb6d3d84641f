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
