"""Paired comparison of the learned segmenter in two `segment eval` reports of the same documents.

    python scripts/paired_windowdiff.py SHIPPED.json CANDIDATE.json [--method learned] [--seed 0]

Per document: WindowDiff(candidate) - WindowDiff(shipped). Prints the mean difference, a 95 % bootstrap interval
over documents (5,000 resamples, seeded) and on how many documents each is better. The interval covers which
documents were drawn, not the training run's own seed: two trainings of one recipe can differ by more.
"""

import argparse
import json
import random
import sys


def scores(path: str, method: str) -> dict[str, float]:
    try:
        rows = json.load(open(path))["per_doc"]
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"{path}: not a segmentation report with per-document scores ({exc})")
    return {r["id"]: r["scores"][method]["windowdiff"] for r in rows if method in r["scores"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shipped")
    parser.add_argument("candidate")
    parser.add_argument("--method", default="learned")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    a, b = scores(args.shipped, args.method), scores(args.candidate, args.method)
    ids = sorted(set(a) & set(b))
    if not ids:
        sys.exit("the two reports share no document")
    diffs = [b[i] - a[i] for i in ids]
    rng, n = random.Random(args.seed), len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(5000))
    print(f"{n} documents: mean WindowDiff candidate - shipped {sum(diffs) / n:+.4f}, 95 % interval "
          f"[{means[125]:+.4f}, {means[4874]:+.4f}]; candidate better on {sum(d < 0 for d in diffs)}, "
          f"worse on {sum(d > 0 for d in diffs)}")


if __name__ == "__main__":
    main()
