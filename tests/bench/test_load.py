"""The load benchmark, small: concurrent clients against a live server, every request succeeds."""

import pytest

from blockattn.bench.load import LoadConfig, percentile, run


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([], 50) is None


@pytest.mark.slow
def test_concurrent_clients_zero_errors_batched_and_one_at_a_time():
    result = run(LoadConfig(clients=4, requests=2, max_tokens=4, time_limit_s=300, max_batch=(4, 1)),
                 log=lambda *_: None)
    assert [r["max_batch"] for r in result["runs"]] == [4, 1] and len(result["ratios"]) == 1
    for one in result["runs"]:
        summary = one["summary"]
        assert summary["requests"] == 8 and summary["errors"] == 0, summary["error_samples"]
        assert summary["latency_ms"]["p50"] > 0 and summary["blocks"]["cached"] > 0
        assert one["server_metrics"]["blockattn_cache_misses_total"] == summary["blocks"]["computed"]
