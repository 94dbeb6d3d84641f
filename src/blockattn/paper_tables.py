"""The paper's tables in docs/results.md (issue 12), rendered from reports/*.json by `blockattn.reports`.

    T2  quality_<model>.json      block-attention quality: model × method (ablations included)
    T3  segkl_<model>.json        KL(full ‖ block) per segmentation method (`blockattn eval all`)
    T4  quality_<model>.json      efficiency: the "curves" of distillation vs block-FT
    F1  sensitivity_<model>.json  per-token KL on HotpotQA examples (`blockattn eval all`)
    T5  bench_ttft_* / bench_serve_* / bench_decode_*   speed

Every verdict ("holds", "does not hold", "costs nothing") is computed here from the numbers, never typed, and
every field may be missing or null: a missing number prints as n/a, a missing report as a line saying it has
not been run.
"""

from __future__ import annotations

import math

GOAL_PCT_OF_FULL = 95.0  # issue 11/12: distilled ≥ 95 % of full on HotpotQA and planted facts
GOAL_GAP_CLOSED = 90.0  # issue 11: ΔPPL, ≥ 90 % of the zero-shot gap closed
MIN_PPL_GAP = 0.05  # a zero-shot ΔPPL at or below this is no gap to close (a ratio of noise)
KL_MATTERS_PCT = 5.0  # an ablation that moves held-out KL by less than this (relative) shows no clear effect
FACT_COUNTS = ("4", "8", "16")
ABLATIONS = {"distilled -sinks": "block sink tokens", "distilled -dropout": "block dropout",
             "distilled -weighting": "token weighting", "distilled -rag": "the RAG-shaped data"}

# (table, report prefix, what produces it[, a key the report must hold]) -- the index at the top of the page
EXPECTED = [
    ("T1 segmentation", "segmentation", "produced by `blockattn segment eval`, README: Segmentation"),
    ("T2 block-attention quality", "quality_", "produced by the GPU run `python -m blockattn.experiments.quality`"),
    ("T3 does segmentation matter (SemanticSeg KL)", "segkl_", "produced by `blockattn eval all`"),
    ("T3 does segmentation matter (HotpotQA re-cut)", "quality_",
     "produced by the GPU run `python -m blockattn.experiments.quality ... --recut-limit N`", "recut"),
    ("T4 efficiency", "quality_", "the curves of the T2 GPU run"),
    ("F1 block sensitivity", "sensitivity_", "produced by `blockattn eval all`"),
    ("T5 speed: TTFT", "bench_ttft", "produced by `blockattn bench ttft`"),
    ("T5 speed: serving", "bench_serve", "produced by `blockattn bench serve`"),
    ("T5 speed: decoding", "bench_decode", "produced by the speed issue's decoding benchmark"),
]


def _f(x, spec: str = "{:.3f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else spec.format(x)


def pct_of(x, ref) -> float | None:
    return None if x is None or not ref else 100.0 * x / ref


def get(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _provenance(name: str, data: dict) -> list[str]:
    fields = [f"Source: `reports/{name}`", f"Command: `{data.get('command', 'not recorded')}`"]
    extra = [f"{k}: {data[k]}" for k in ("commit", "machine", "wall_seconds", "seed") if data.get(k) is not None]
    return ["  \n".join(fields + ([" · ".join(extra)] if extra else [])), ""]


def index(reports: dict[str, dict]) -> list[str]:
    """One line per paper table (from report name → its JSON): the reports behind it, or that it has not been
    run."""
    out = ["## The paper's tables", ""]
    for table, prefix, producer, *needs in EXPECTED:
        found = [n for n, d in reports.items() if n.startswith(prefix) and all(d.get(k) for k in needs)]
        if found:
            out.append(f"- **{table}**: " + ", ".join(f"`reports/{n}`" for n in found))
        else:
            out.append(f"- **{table}**: has not been run ({producer}).")
    return out + [""]


# ---------------------------------------------------------------------------------------------- T2 + T4
def row_of(rows: list[dict], method: str) -> dict | None:
    return next((r for r in rows if r.get("method") == method), None)


def facts_mean(row: dict | None, key: str = "facts") -> float | None:
    vals = [v for v in ((get(row, key) or {}).get(c) for c in FACT_COUNTS) if v is not None]
    return sum(vals) / len(vals) if vals else None


def se_diff(p: float, q: float, n: int) -> float:
    """Standard error of the difference of two accuracies on the same n questions (treated as independent:
    an upper bound for paired runs)."""
    return math.sqrt(max(p * (1 - p), 1e-9) / n + max(q * (1 - q), 1e-9) / n)


def quality_verdicts(data: dict) -> list[str]:
    """The claims of T2, each judged from the numbers."""
    rows = data.get("rows") or []
    full, zs = row_of(rows, "full"), row_of(rows, "zero-shot block")
    dist, ft = row_of(rows, "distilled"), row_of(rows, "block-FT")
    out = []
    hq_full, hq_dist = get(full, "hotpotqa", "contains"), get(dist, "hotpotqa", "contains")
    pct = pct_of(hq_dist, hq_full)
    if pct is not None:
        out.append(f"Distilled ≥ {GOAL_PCT_OF_FULL:.0f} % of full on HotpotQA: "
                   f"{'holds' if pct >= GOAL_PCT_OF_FULL else 'does not hold'} ({pct:.1f} %).")
    on_correct = get(dist, "hotpotqa", "contains_on_full_correct")
    if on_correct is not None:
        out.append(f"On the questions full attention gets right, distilled block mode gets {on_correct:.3f} right.")
    for key, label in (("facts", "Planted facts"), ("multihop", "Two-hop chains")):
        for count in FACT_COUNTS:
            p = pct_of(get(dist, key, count), get(full, key, count))
            if p is not None:
                out.append(f"{label}, {count} documents: distilled {p:.1f} % of full — "
                           f"{'holds' if p >= GOAL_PCT_OF_FULL else 'does not hold'} the {GOAL_PCT_OF_FULL:.0f} % "
                           "goal.")
    gap_zs, gap_d = get(zs, "delta_ppl"), get(dist, "delta_ppl")
    if gap_zs is not None and gap_d is not None and gap_zs <= MIN_PPL_GAP:
        # a zero-shot gap of ~0 (or below: block mode already as good as full) leaves no gap to close
        out.append(f"ΔPPL: zero-shot block mode is already within {MIN_PPL_GAP} of full ({gap_zs:+.3f}): no gap to "
                   f"close on this text (distilled {gap_d:+.3f}); KL is the measure here.")
    elif gap_zs and gap_d is not None:
        closed = 100.0 * (gap_zs - gap_d) / gap_zs
        out.append(f"ΔPPL: {closed:.1f} % of the zero-shot gap closed — "
                   f"{'holds' if closed >= GOAL_GAP_CLOSED else 'does not hold'} the {GOAL_GAP_CLOSED:.0f} % goal.")
    if dist and ft:
        for label, a, b in (("HotpotQA", get(dist, "hotpotqa", "contains"), get(ft, "hotpotqa", "contains")),
                            ("planted facts (mean of 4/8/16)", facts_mean(dist), facts_mean(ft))):
            if a is not None and b is not None:
                winner = "distillation wins" if a > b else ("block-FT wins" if b > a else "a tie")
                n_q = get(dist, "hotpotqa", "n") if label == "HotpotQA" else None
                if n_q and a != b and abs(a - b) < 2 * se_diff(a, b, n_q):
                    winner += f", within two standard errors ({2 * se_diff(a, b, n_q):.3f}): not shown"
                out.append(f"Distillation vs block-FT at equal tokens, {label}: {a:.3f} vs {b:.3f} — {winner}.")
        ka, kb = get(dist, "kl"), get(ft, "kl")
        if ka is not None and kb is not None:
            winner = "distillation is closer to full" if ka < kb else "block-FT is closer to full"
            out.append(f"Distillation vs block-FT at equal tokens, held-out KL to full attention: {ka:.4f} vs "
                       f"{kb:.4f} — {winner}.")
    n = get(dist, "hotpotqa", "n") or 0
    for method, component in ABLATIONS.items():
        abl = row_of(rows, method)
        if abl is None:
            continue
        parts = []
        a, b = get(dist, "hotpotqa", "contains"), get(abl, "hotpotqa", "contains")
        if a is not None and b is not None:
            cost = a - b
            se = se_diff(a, b, n) if n else None
            if se is not None and abs(cost) < 2 * se:
                parts.append(f"HotpotQA {b:.3f} without it vs {a:.3f} with it, within two standard errors "
                             f"({2 * se:.3f}): not shown either way")
            elif cost <= 0:
                parts.append(f"HotpotQA {b:.3f} without it vs {a:.3f} with it: removing it does not cost")
            else:
                parts.append(f"HotpotQA costs {cost:.3f} ({b:.3f} without it vs {a:.3f})")
        ka, kb = get(dist, "kl"), get(abl, "kl")
        if ka is not None and kb is not None and ka > 0:
            change = 100.0 * (kb - ka) / ka
            parts.append(f"held-out KL {kb:.4f} without it vs {ka:.4f} with it ({change:+.0f} %: "
                         + ("it helps" if change >= KL_MATTERS_PCT else "it hurts" if change <= -KL_MATTERS_PCT
                            else "no clear effect") + ")")
        if parts:
            out.append(f"Removing {component}: " + "; ".join(parts) + ".")
    return out


def render_quality(name: str, data: dict) -> list[str]:
    model = data.get("model", name) + (f" ({data['report_tag']})" if data.get("report_tag") else "")
    rows = data.get("rows") or []
    full = row_of(rows, "full")
    hq_full = get(full, "hotpotqa", "contains")
    out = [f"### T2 Block-attention quality — {model}", ""] + _provenance(name, data)
    out += ["| method | train tokens | GPU s | HotpotQA | EM | % of full | on full-correct | facts 4 | facts 8 | "
            "facts 16 | facts % of full | 2-hop 4 | 2-hop 8 | 2-hop 16 | 2-hop % of full | ΔPPL | KL |",
            "|---|" + "---:|" * 16]
    for r in rows:
        hq = r.get("hotpotqa") or {}
        facts = r.get("facts") or {}
        hops = r.get("multihop") or {}
        out.append(
            f"| {r.get('method', '?')} | {_f(r.get('train_tokens'), '{:,}')} | {_f(r.get('gpu_seconds'), '{:.0f}')} | "
            f"{_f(hq.get('contains'))} | {_f(hq.get('em'))} | {_f(pct_of(hq.get('contains'), hq_full), '{:.1f}')} | "
            f"{_f(hq.get('contains_on_full_correct'))} | "
            + " | ".join(_f(facts.get(c)) for c in FACT_COUNTS)
            + f" | {_f(pct_of(facts_mean(r), facts_mean(full)), '{:.1f}')} | "
            + " | ".join(_f(hops.get(c)) for c in FACT_COUNTS)
            + f" | {_f(pct_of(facts_mean(r, 'multihop'), facts_mean(full, 'multihop')), '{:.1f}')} | "
              f"{_f(r.get('delta_ppl'))} | {_f(r.get('kl'), '{:.4f}')} |")
    n = get(full, "hotpotqa", "n")
    out += ["", f"HotpotQA: normalised gold answer contained in the output, {n or 'n/a'} questions; % of full = "
            "the method's score over full attention's; facts % of full over the mean of 4/8/16 documents; 2-hop: "
            "held-out two-hop chains (entity → person → city) with a distractor chain in every other pair of "
            "documents, at 4/8/16 documents."]
    verdicts = quality_verdicts(data)
    if verdicts:
        out += [""] + [f"- {v}" for v in verdicts]
    return out + [""] + render_efficiency(name, data) + render_recut(name, data)


def render_recut(name: str, data: dict) -> list[str]:
    """T3 (HotpotQA re-cut) from the same report's "recut", when the run made one."""
    recut = data.get("recut") or {}
    methods = recut.get("methods") or {}
    if not methods:
        return []
    model = data.get("model", name)
    ref = (methods.get("paragraph") or {}).get("contains")
    out = ["", f"### T3 Does segmentation matter (HotpotQA re-cut) — {model}", "",
           f"From `reports/{name}` (\"recut\"): each question's paragraphs joined and cut again into as many "
           f"blocks by each method, answered by the {recut.get('variant', 'distilled')} model in block mode "
           f"({recut.get('n')} questions). `paragraph` recovers the given paragraphs.", "",
           "| method | HotpotQA | EM | vs paragraph | blocks | same as given | segmenting s |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for method, r in methods.items():
        diff = None if ref is None or r.get("contains") is None else r["contains"] - ref
        out.append(f"| {method} | {_f(r.get('contains'))} | {_f(r.get('em'))} | {_f(diff, '{:+.3f}')} | "
                   f"{_f(r.get('blocks_mean'), '{:.1f}')} | {_f(r.get('same_as_given'), '{:.2f}')} | "
                   f"{_f(r.get('segment_seconds'), '{:.2f}')} |")
    others = {m: r.get("contains") for m, r in methods.items() if m != "paragraph" and r.get("contains") is not None}
    if others and ref is not None:
        best = max(others, key=others.get)
        out += ["", f"- Best re-cut: {best} ({others[best]:.3f}) against the given paragraphs' {ref:.3f}."]
    return out


def render_efficiency(name: str, data: dict) -> list[str]:
    """T4 from the same report's "curves"."""
    curves = data.get("curves") or {}
    if not any(curves.values()):
        return [f"### T4 Efficiency — {data.get('model', name)}", "", "No curves in this report yet.", ""]
    out = [f"### T4 Efficiency — {data.get('model', name)}", "", f"From `reports/{name}` (\"curves\").", "",
           "| method | train tokens | GPU s | KL | HotpotQA |", "|---|---:|---:|---:|---:|"]
    for method, points in curves.items():
        for p in points or []:
            out.append(f"| {method} | {_f(p.get('tokens'), '{:,}')} | {_f(p.get('gpu_seconds'), '{:.0f}')} | "
                       f"{_f(p.get('kl'), '{:.4f}')} | {_f(p.get('hotpotqa'))} |")
    dist, ft = curves.get("distilled") or [], curves.get("block-FT") or []
    common = sorted({p.get("tokens") for p in dist} & {p.get("tokens") for p in ft} - {None})
    if common:
        t = common[-1]
        a = next(p for p in dist if p.get("tokens") == t)
        b = next(p for p in ft if p.get("tokens") == t)
        for key, better_low in (("kl", True), ("hotpotqa", False)):
            if a.get(key) is not None and b.get(key) is not None:
                d_better = a[key] < b[key] if better_low else a[key] > b[key]
                tie = a[key] == b[key]
                out.append("")
                out.append(f"At {t:,} training tokens, {key}: distilled {a[key]:.4f} vs block-FT {b[key]:.4f} — "
                           + ("a tie." if tie else "distillation is ahead." if d_better
                              else "block-FT is ahead: the efficiency claim does not hold here."))
    return out + [""]


# ---------------------------------------------------------------------------------------------- T3
def render_segkl(name: str, data: dict) -> list[str]:
    methods = data.get("methods") or {}
    variants = list(next(iter(methods.values()), {}))
    out = [f"### T3 Does segmentation matter? — KL(full ‖ block) per method, {data.get('model', name)}", ""]
    out += _provenance(name, data)
    out += [f"{data.get('documents', 'n/a')} texts of SemanticSeg {data.get('split', 'test')} (first "
            f"~{data.get('max_tokens', 'n/a')} tokens each), every method cutting each text into its gold medium "
            "block count, read in block mode (last block = query); mean per-token KL over all tokens, nats. "
            "Lower = the blocks are more self-contained.", "",
            "| method | blocks / text | " + " | ".join(f"KL {v}" for v in variants) + " |",
            "|---|---:|" + "---:|" * len(variants)]
    for m, per in methods.items():
        blocks = next(iter(per.values()), {}).get("blocks_mean")
        out.append(f"| {m} | {_f(blocks, '{:.1f}')} | " + " | ".join(_f(get(per, v, 'kl'), '{:.4f}')
                                                                     for v in variants) + " |")
    for v in variants:
        scored = {m: get(per, v, "kl") for m, per in methods.items() if m != "gold" and get(per, v, "kl") is not None}
        if len(scored) > 1:
            best, worst = min(scored, key=scored.get), max(scored, key=scored.get)
            learned = scored.get("learned")
            line = (f"{v}: lowest KL {best} ({scored[best]:.4f}), highest {worst} ({scored[worst]:.4f}), "
                    f"spread {100 * (scored[worst] - scored[best]) / scored[worst]:.0f} % of the highest")
            if learned is not None:
                line += ("; the learned segmenter is the best method" if best == "learned"
                         else f"; the learned segmenter does not give the lowest KL ({learned:.4f})")
            out += ["", line + "."]
    png = name.rsplit(".", 1)[0] + ".png"
    return out + ["", f"![T3](../reports/{png})", ""]


# ---------------------------------------------------------------------------------------------- F1
def render_sensitivity(name: str, data: dict) -> list[str]:
    examples = data.get("examples") or []
    variants = list(get(examples[0], "variants") or {}) if examples else []
    out = [f"### F1 Block sensitivity — {data.get('model', name)}", ""] + _provenance(name, data)
    out += ["Per-token KL(full ‖ block) over HotpotQA prompts (each paragraph a block) with the gold answer "
            "teacher-forced after the question: mean over the paragraphs' tokens (text) and over the predictions "
            "of the answer tokens (answer).", "",
            "| question | answer | " + " | ".join(f"{v}: text | {v}: answer" for v in variants) + " |",
            "|---|---|" + "---:|---:|" * len(variants)]
    for ex in examples:
        vs = ex.get("variants") or {}
        out.append(f"| {ex.get('question', '')[:70]} | {ex.get('answer', '')} | "
                   + " | ".join(f"{_f(get(vs, v, 'kl_text'))} | {_f(get(vs, v, 'kl_answer'))}" for v in variants)
                   + " |")
    if len(variants) >= 2 and examples:
        a, b = variants[0], variants[-1]
        mean = {v: [get(ex, "variants", v, "kl_answer") for ex in examples] for v in (a, b)}
        if all(x is not None for x in mean[a] + mean[b]):
            ma, mb = sum(mean[a]) / len(mean[a]), sum(mean[b]) / len(mean[b])
            out += ["", f"Mean answer KL: {a} {ma:.3f}, {b} {mb:.3f} — "
                    + (f"{b} lowers it by {100 * (ma - mb) / ma:.0f} %." if ma > 0 and mb < ma
                       else f"{b} does not lower it.")]
    png = name.rsplit(".", 1)[0] + ".png"
    return out + ["", f"![F1](../reports/{png})", ""]


def render_hotpot_errors(name: str, data: dict) -> list[str]:
    """T2 diagnostic (`scripts/hotpot_errors.py`): where the HotpotQA answers lost against a reference came from."""
    out = [f"### T2 diagnostic: where {data['other']}'s lost HotpotQA answers came from", ""] + _provenance(name, data)
    lost_from = data.get("lost_from") or {}
    out += [f"{data['n']} questions: {data['reference']} right on {data['reference_right']}, {data['other']} on "
            f"{data['other_right']}; {data['lost']} lost, {data['gained']} gained. A lost answer is traced by its "
            "content words: to a distractor paragraph only (the wrong document read), to a supporting paragraph "
            "(the right one, the wrong span), to the question (an echo of it), or to none.", "",
            "| from | lost answers |", "|---|---:|"]
    out += [f"| {kind} | {count} |" for kind, count in lost_from.items()]
    examples = [m for m in data.get("misses", []) if m.get("kind") == "distractor"][:3]
    if examples:
        out += ["", "Answers read from a distractor:"]
        out += [f"- {m['question']} gold {m['gold']!r}; {data['reference']} {m['reference'][:60]!r}; "
                f"{data['other']} {m['other'][:60]!r}" for m in examples]
    return out + [""]


# ---------------------------------------------------------------------------------------------- T5
def render_speed_generic(name: str, data: dict) -> list[str]:
    """A speed report of a schema this module does not know: its scalar fields and the scalar columns of its
    "rows", whatever they are."""
    out = [f"### T5 Speed — {name.rsplit('.', 1)[0]}", ""] + _provenance(name, data)
    scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str)) and k not in
               ("command", "commit", "machine", "wall_seconds", "seed")}
    if scalars:
        out += ["; ".join(f"{k}: {v}" for k, v in scalars.items()), ""]
    rows = [r for r in data.get("rows") or [] if isinstance(r, dict)]
    cols = [k for k in (rows[0] if rows else {}) if all(isinstance(r.get(k), (int, float, str, type(None)))
                                                         for r in rows)]
    if cols:
        out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(_f(r.get(c), "{:.2f}") if isinstance(r.get(c), float) else str(r.get(c, "n/a"))
                                  for c in cols) + " |" for r in rows]
    return out + [""]
