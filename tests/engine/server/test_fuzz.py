"""Hypothesis-generated bodies (random JSON, unicode, sizes, nesting, raw bytes) against the live server on
loopback: 200 or 4xx, never 5xx, no dropped connection, and the model worker still answers afterwards.
Bounded here (a few hundred bodies); `python -m blockattn.bench.fuzz_server` runs the 5,000-body goal."""

from blockattn.bench.fuzz_server import fuzz


def test_fuzzed_bodies_never_get_a_5xx_and_the_worker_survives(server_url):
    result = fuzz(server_url, bodies=300, rng_seed=1, check_every=100)
    assert result["bodies"] == 300
    assert result["count_5xx"] == 0, result["server_error_samples"]
    assert result["transport_errors"] == 0, result["transport_error_samples"]
    assert result["alive_checks"] == 4 and result["alive_failures"] == 0
    assert "200" in result["statuses"] and "400" in result["statuses"] or "422" in result["statuses"]
