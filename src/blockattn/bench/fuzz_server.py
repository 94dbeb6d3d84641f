"""Hypothesis-generated request bodies against a live server, over loopback: random JSON shapes, unicode,
sizes and nesting, near-valid OpenAI bodies with one field gone wrong, and raw non-JSON bytes. The property:
every answer is 200 or 4xx, never 5xx, and the model worker still answers a valid request afterwards.

    python -m blockattn.bench.fuzz_server --bodies 5000 --out reports/fuzz_server.json
        (serves a tiny random-weight model in-process on 127.0.0.1; --url fuzzes an already running server)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ENDPOINTS = ("/v1/chat/completions", "/v1/completions")
VALID = {"model": "default", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2, "temperature": 0}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=16)
# long texts by repetition: past the model's window, so size limits are exercised too
texts = st.text(max_size=60) | st.builds(lambda t, n: t * n, st.text(min_size=1, max_size=12), st.integers(0, 4000))
small_tokens = st.integers(1, 3)
documents = st.lists(st.fixed_dictionaries({"text": texts}) | json_values, max_size=4) | json_values
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "developer",
                                                                      "tool", ""]) | json_values,
                                           "content": texts | st.lists(st.fixed_dictionaries(
                                               {"type": st.just("text") | json_values, "text": texts}),
                                               max_size=3) | json_values}), max_size=4) | json_values
optional = {
    "temperature": st.floats(-1, 3) | json_values, "top_p": st.floats(-1, 2) | json_values,
    "stop": st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=6) | json_values,
    "seed": st.integers() | json_values, "stream": st.booleans() | json_values, "n": st.integers(-1, 3),
    "documents": documents, "segment": st.sampled_from(["none", "auto"]) | json_values,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | json_values,
    "logit_bias": json_values, "response_format": json_values, "user": json_values,
    "presence_penalty": st.floats(-3, 3) | json_values, "max_completion_tokens": small_tokens | json_values,
}
max_tokens = small_tokens | small_tokens | st.integers(-5, 10 ** 30) | json_values
chat_bodies = st.fixed_dictionaries({"model": st.just("default") | st.text(max_size=20),
                                     "messages": messages, "max_tokens": max_tokens}, optional=optional)
completion_bodies = st.fixed_dictionaries({"model": st.just("default") | json_values,
                                           "prompt": texts | st.lists(st.integers(-5, 70000), max_size=8)
                                           | st.lists(texts, max_size=2) | json_values,
                                           "max_tokens": max_tokens}, optional=optional)


def _dump(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()  # NaN/Infinity literals: invalid JSON on purpose


raw_bodies = (st.binary(max_size=200)
              | st.integers(1, 5000).map(lambda d: ("[" * d + "]" * d).encode())  # deep nesting
              | st.integers(1, 5000).map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()))
# a valid chat body with optional fields drawn on top: most stay valid (the 200 path is fuzzed too, whatever the
# random draws above produce), some go wrong in exactly one place
near_valid = st.fixed_dictionaries({}, optional=optional).map(lambda extra: _dump({**VALID, **extra}))
requests = st.tuples(st.sampled_from(ENDPOINTS), st.one_of(chat_bodies.map(_dump), completion_bodies.map(_dump),
                                                           near_valid, json_values.map(_dump), raw_bodies))


def worker_alive(client: httpx.Client) -> bool:
    response = client.post("/v1/chat/completions", json=VALID)
    return response.status_code == 200 and bool(response.json()["choices"])


def fuzz(url: str, bodies: int, rng_seed: int = 0, check_every: int = 250) -> dict:
    """Send `bodies` generated requests; the status counts, the 5xx samples, the liveness checks."""
    statuses: Counter = Counter()
    server_errors: list[dict] = []
    transport_errors: list[str] = []
    alive_checks = []
    sent = 0
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=120) as client:
        @seed(rng_seed)
        @settings(max_examples=bodies, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(requests)
        def one(request) -> None:
            nonlocal sent
            endpoint, body = request
            sent += 1
            try:
                response = client.post(endpoint, content=body, headers={"content-type": "application/json"})
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append({"endpoint": endpoint, "status": response.status_code,
                                          "body": body[:300].decode("utf-8", "replace"), "reply": response.text[:300]})
            except httpx.TransportError as exc:  # a dropped connection is as bad as a 5xx
                transport_errors.append(f"{endpoint}: {exc!r}"[:300])
            if sent % check_every == 0:
                alive_checks.append(worker_alive(client))

        one()
        alive_checks.append(worker_alive(client))
    return {"bodies": sent, "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "count_5xx": sum(v for k, v in statuses.items() if k >= 500), "transport_errors": len(transport_errors),
            "server_error_samples": server_errors[:5], "transport_error_samples": transport_errors[:5],
            "alive_checks": len(alive_checks), "alive_failures": alive_checks.count(False),
            "seconds": round(time.monotonic() - start, 1), "seed": rng_seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="an already running server (default: a tiny model served in-process)")
    parser.add_argument("--out", type=Path, default=Path("reports/fuzz_server.json"))
    args = parser.parse_args(argv)
    if args.bodies < 1:
        print("error: --bodies must be at least 1", file=sys.stderr)
        return 2
    if args.url:
        result = {"server": args.url, **fuzz(args.url, args.bodies, args.seed)}
    else:
        import tempfile

        from blockattn.engine.server import background
        from blockattn.engine.service import Service
        from blockattn.models.tiny import save_tiny_model

        with tempfile.TemporaryDirectory() as tmp:
            service = Service.load(str(save_tiny_model(Path(tmp) / "tiny")), adapter="none", device="cpu")
            with background(service) as url:
                result = {"server": "in-process, tiny random-weight llama + SmolLM2 tokenizer",
                          **fuzz(url, args.bodies, args.seed)}
    from blockattn.reportio import write_report

    result["command"] = "python -m blockattn.bench.fuzz_server " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(result, args.out)
    print(json.dumps({k: result[k] for k in ("bodies", "statuses", "count_5xx", "transport_errors",
                                             "alive_failures", "seconds")}))
    return 0 if result["count_5xx"] == result["transport_errors"] == result["alive_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
