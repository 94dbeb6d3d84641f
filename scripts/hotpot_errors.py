"""Where block mode's HotpotQA answers go wrong: the questions a reference run gets right and another misses, each
miss sorted by where its answer came from.

    python scripts/hotpot_errors.py FULL.json BLOCK.json [--hotpotqa dev500.jsonl.gz] [--show 10]
        [--out reports/hotpot_errors_NAME.json --how "the commands that wrote FULL.json and BLOCK.json"]

FULL.json / BLOCK.json: `blockattn eval hotpotqa --out` files (every output kept) of the same questions. A miss is
  distractor   its answer's content words are found in a distractor paragraph and in no supporting one: the model
               read the wrong document
  supporting   found in a supporting paragraph: the right document, the wrong span (or a bridge entity)
  question     every content word is in the question: an echo of it
  nowhere      neither: made up, or too long to match
Evaluation data: read to diagnose, never to train or tune on.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from blockattn.data.hotpotqa import load_items  # noqa: E402
from blockattn.errors import UserError  # noqa: E402
from blockattn.eval.hotpotqa import normalize  # noqa: E402
from blockattn.reportio import provenance, write_report  # noqa: E402

KINDS = ("distractor", "supporting", "question", "nowhere")

# words that say nothing about which document an answer came from
STOP = set("is was are were be been of in on at to for from by with and or as that this it its his her their "
           "which who whom what when where why how did does do has have had not no yes".split())


def content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in STOP and len(w) > 1}


def source_of(answer: str, question: str, paragraphs, supporting) -> str:
    words = content_words(answer) - content_words(question)
    if not words:
        return "question"

    def covered(paragraph: str) -> bool:  # most of the answer's own words are in this paragraph
        have = content_words(paragraph)
        return len(words & have) >= max(1, round(0.6 * len(words)))

    if any(covered(p) for p, s in zip(paragraphs, supporting) if s):
        return "supporting"
    if any(covered(p) for p, s in zip(paragraphs, supporting) if not s):
        return "distractor"
    return "nowhere"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", type=Path)
    ap.add_argument("other", type=Path)
    ap.add_argument("--hotpotqa", default=None)
    ap.add_argument("--show", type=int, default=8, help="misses to print, per kind")
    ap.add_argument("--out", type=Path, default=None, help="also write the counts and every miss as a report JSON")
    ap.add_argument("--how", default="", help="with --out: how the two input files were made (their commands)")
    args = ap.parse_args()
    started = time.perf_counter()
    try:
        ref, other = (json.loads(p.read_text()) for p in (args.reference, args.other))
    except (OSError, ValueError) as exc:
        print(f"hotpot_errors: {exc}", file=sys.stderr)
        return 2
    try:
        items = {it.qid: it for it in load_items(args.hotpotqa)}
    except UserError as exc:
        print(f"hotpot_errors: {exc}", file=sys.stderr)
        return 2
    common = [q for q in ref["per_item"] if q in other["per_item"] and q in items]
    if not common:
        print("hotpot_errors: the two files share no questions", file=sys.stderr)
        return 2
    misses = [q for q in common if ref["per_item"][q][0] and not other["per_item"][q][0]]
    gains = [q for q in common if other["per_item"][q][0] and not ref["per_item"][q][0]]
    kinds = {q: source_of(other["outputs"][q], items[q].question, items[q].paragraphs, items[q].supporting)
             for q in misses}
    print(f"{len(common)} questions: {ref.get('name', args.reference.stem)} right on "
          f"{sum(ref['per_item'][q][0] for q in common)}, {other.get('name', args.other.stem)} on "
          f"{sum(other['per_item'][q][0] for q in common)}; {len(misses)} lost, {len(gains)} gained")
    counts = Counter(kinds.values())
    print("lost answers came from: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in KINDS))
    if args.out:
        report = {**provenance(0, time.perf_counter() - started,
                               "python scripts/hotpot_errors.py " + shlex.join(sys.argv[1:])),
                  "where": args.how, "reference": ref.get("name", args.reference.stem),
                  "other": other.get("name", args.other.stem), "n": len(common),
                  "reference_right": sum(ref["per_item"][q][0] for q in common),
                  "other_right": sum(other["per_item"][q][0] for q in common), "lost": len(misses),
                  "gained": len(gains), "lost_from": {k: counts.get(k, 0) for k in KINDS},
                  "misses": [{"question": items[q].question, "gold": items[q].answers[0], "kind": kinds[q],
                              "reference": ref["outputs"][q], "other": other["outputs"][q]} for q in misses]}
        print(f"wrote {write_report(report, args.out)}")
    for kind in KINDS:
        shown = [q for q in misses if kinds[q] == kind][:args.show]
        for q in shown:
            print(f"  [{kind}] {items[q].question}\n      gold {items[q].answers[0]!r}; "
                  f"reference {ref['outputs'][q][:70]!r}; other {other['outputs'][q][:70]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
