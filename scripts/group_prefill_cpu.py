"""Why `serve --group-prefill` is off by default on the CPU: the engine's admission work for groups of requests,
grouped (`service.prefill_together`, then each prefill) against one by one, real SmolLM2 on this machine's CPU.

    .venv/bin/python scripts/group_prefill_cpu.py [--groups 15] [--context-tokens 1024]
                                                  [--out reports/group_prefill_cpu.json]

Requests as `bench serve` draws them (HotpotQA paragraphs, Zipf popularity, seed 0), four at a time as a server
admits them; the block cache is first warmed by 20 groups. Groups alternate between the two ways, so drift in
the machine's speed falls on both alike. Each group: the time until all four first tokens are chosen, and the
blocks computed for it.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=15, help="measured groups per way")
    parser.add_argument("--context-tokens", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("reports/group_prefill_cpu.json"))
    args = parser.parse_args()
    import numpy as np
    import torch

    from blockattn.bench.serve import load_corpus, plan, popularity
    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.service import Service, prefill_together
    from blockattn.reportio import machine, provenance, write_report

    started = time.perf_counter()
    service = Service.load("smollm2-135m-instruct", device="cpu")
    corpus = load_corpus(service.tokenizer)
    warm, per = 20, 4
    requests = plan(corpus, popularity(corpus, 0), per * (warm + 2 * args.groups), args.context_tokens, 1.1,
                    np.random.default_rng(0))

    def generations(batch):
        return [service.generate(service.chat_prompt([{"role": "user", "content": r["question"]}],
                                                     [corpus.documents[i] for i in r["documents"]]),
                                 SamplingParams(), 1) for r in batch]

    for g in generations(requests[:warm * per]):
        g.begin()
    results = {"grouped": [], "one_by_one": []}
    for k in range(2 * args.groups):
        way = "grouped" if k % 2 == 0 else "one_by_one"
        batch = generations(requests[(warm + k) * per:(warm + k + 1) * per])
        t = time.perf_counter()
        if way == "grouped":
            prefill_together(batch, always=True)
        for g in batch:
            g.begin()
            g.first()
        results[way].append({"ms": round((time.perf_counter() - t) * 1e3, 1),
                             "computed_blocks": sum(g.usage.computed_blocks for g in batch)})
        print(way, results[way][-1], file=sys.stderr)
    rows = [{"way": way, "groups": len(v), "ms_per_group_p50": statistics.median(r["ms"] for r in v),
             "computed_blocks_mean": round(statistics.fmean(r["computed_blocks"] for r in v), 2)}
            for way, v in results.items()]
    command = "python " + " ".join(sys.argv)
    write_report({"title": "Grouped block prefill on the CPU (padded batches)", "rows": rows, "groups": results,
                  "config": {"context_tokens": args.context_tokens, "per_group": per, "warm_groups": warm,
                             "threads": torch.get_num_threads()},
                  **provenance(0, time.perf_counter() - started, command),
                  "where": f"{machine()}, 2 CPU cores, nothing else running"}, args.out)
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
