"""docs/results.md, generated from the JSON under reports/ -- never typed by hand.

    python -m blockattn.reports            # rewrite docs/results.md
    python -m blockattn.reports --check    # exit 1 if docs/results.md is stale (used by the tests)

Every benchmark/evaluation writes its JSON with the command that produced it ("command") and where it ran
("where", when not this machine); each section below renders one kind of report and quotes that command.
Reports of a kind this module does not know are still listed, with their command.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Callable

from blockattn import paper_claims, paper_tables

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
RESULTS = ROOT / "docs" / "results.md"

Renderer = Callable[[str, dict], list[str]]


def _fmt(x, spec: str = "{:.2f}") -> str:
    return "n/a" if x is None else spec.format(x)


def _provenance(name: str, data: dict) -> list[str]:
    lines = [f"Source: `reports/{name}`"]
    if data.get("command"):
        lines.append(f"Command: `{data['command']}`")
    if data.get("where"):
        lines.append(f"Where: {data['where']}")
    return ["  \n".join(lines), ""]


def render_attention(name: str, data: dict) -> list[str]:
    cfg = data["config"]
    env = data["env"]
    out = [f"### Attention kernels — {env.get('gpu', 'CPU')} ({cfg['dtype']})", ""]
    out += _provenance(name, data)
    out += [f"RAG-shaped layout: context blocks of {cfg['block_tokens']} tokens + a {cfg['query_tokens']}-token "
            f"query; {cfg['heads']} query heads, {cfg['kv_heads']} KV heads, head dim {cfg['head_dim']}.", "",
            "| N | method | fwd ms | fwd+bwd ms | peak MB (fwd+bwd) | mask MB |", "|---:|---|---:|---:|---:|---:|"]
    for r in data["rows"]:
        out.append(f"| {r['n']} | {r['method']} | {_fmt(r['fwd_ms'])} | {_fmt(r['fwdbwd_ms'])} | "
                   f"{_fmt(r['fwdbwd_peak_mb'], '{:.0f}')} | {r['mask_bytes'] / 2**20:.2f} |")
    out += ["", "| N | dense / flex (fwd) | dense / flex (fwd+bwd) | causal / flex (fwd) | causal / flex (fwd+bwd) |",
            "|---:|---:|---:|---:|---:|"]
    for r in data["ratios"]:
        out.append(f"| {r['n']} | {_fmt(r.get('dense_over_flex_fwd'))} | {_fmt(r.get('dense_over_flex_fwdbwd'))} | "
                   f"{_fmt(r.get('causal_over_flex_fwd'))} | {_fmt(r.get('causal_over_flex_fwdbwd'))} |")
    return out + _image(name, "attention benchmark") + [""]


def _image(name: str, alt: str) -> list[str]:
    png = Path(name).with_suffix(".png").name
    return ["", f"![{alt}](../reports/{png})"] if (REPORTS / png).is_file() else []


def render_ttft(name: str, data: dict) -> list[str]:
    env = data.get("env", {})
    dated = re.search(r"_(\d{4}-\d{2}-\d{2})$", Path(name).stem)  # an earlier run kept beside the current one
    earlier = f" (earlier run, {dated.group(1)})" if dated else ""
    out = [f"### Time to first token — {env.get('gpu', 'CPU')}{earlier}", ""] + _provenance(name, data)
    if data.get("note"):
        out += [str(data["note"]), ""]
    out += ["Full prefill vs all blocks cached vs cold block prefill (median ms), blocks of "
            f"{data['config']['block_tokens']} tokens + a {data['config']['question_tokens']}-token question.", "",
            "| model | N | full | cold | cached | cached % of full | HF DynamicCache path | CUDA graph | "
            "graph % of full | graph, unfused ops | assemble | query | floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        phases = r.get("cached_phases_ms") or {}
        out.append(f"| {r['model']} | {r['tokens']} | {_fmt(r['full_ms'])} | {_fmt(r['cold_ms'])} | "
                   f"{_fmt(r['cached_ms'])} | {_fmt(r['cached_pct_of_full'])} % | {_fmt(r.get('hf_cached_ms'))} | "
                   f"{_fmt(r.get('graph_ms'))} | {_fmt(r.get('graph_pct_of_full'))} | "
                   f"{_fmt(r.get('graph_unfused_ms'))} | {_fmt(phases.get('assemble'))} | "
                   f"{_fmt(phases.get('query'))} | {_fmt(r.get('floor_ms'))} |")
    out += ["", "assemble / query: the cached path's phases timed separately (synchronised, so they add up to more "
            "than cached); floor: reading the weights and the cached KV once at the measured copy bandwidth; "
            "graph, unfused ops: the CUDA-graph path in the same run without the fused norms / rotary / SwiGLU "
            "(`engine.fusedops`, the default on CUDA; - where the run predates them)."]
    out += _graph_choices(data["rows"])
    goal = data.get("goal") or {}
    if goal.get("measured_pct") is not None:
        out += ["", f"Goal: cached ≤ {goal['max_cached_pct_of_full']} % of full for {goal['model']} at "
                f"{goal['tokens']} tokens. Measured {goal['measured_pct']:.2f} % (eager)"
                + (f", {goal['measured_graph_pct']:.2f} % (CUDA graph)" if goal.get("measured_graph_pct") else "")
                + f" — {'met' if goal.get('met') or goal.get('met_with_graphs') else 'not met'}."]
    return out + _image(name, "TTFT") + [""]


def _graph_choices(rows: list[dict]) -> list[str]:
    """What the CUDA-graph engine chose at each size (runs that record it): where flash starts, as timed at
    engine start, and whether each query shape's graph beat its timed eager forward (`engine.querypath`)."""
    lines = []
    for r in rows:
        info = r.get("graph") or {}
        verdicts = info.get("verdicts")
        if not verdicts:
            continue
        shapes = "; ".join(f"{v['capacity']} slots: graph {v['graph_ms']:.1f} ms vs eager {v['eager_ms']:.1f} ms, "
                           f"{'graph kept' if v['graph_kept'] else 'eager chosen'}" for v in verdicts)
        splits = ", ".join(f"{s['slots']}: {s['chunk_slots']}-slot chunks{' packed' if s['pack_gqa'] else ''}"
                           for s in info.get("splits") or [])
        split_note = f"; flash splits timed at start, {splits}" if splits else ""
        lines.append(f"- {r['model']} at {r['tokens']} (flash from {info.get('flash_from_slots')} slots{split_note}): "
                     f"{shapes}")
    if not lines:
        return []
    return ["", "CUDA-graph column: the engine's own choice per query shape (its first replay timed against a timed "
            "eager forward; the faster one serves from then on):", ""] + lines


def _decode_goal(key: str, goal: dict) -> str:
    """One decode goal on the page: what each kind of step measured against it, mode by mode, and whether
    it was met (a mode left unmeasured is said so, never counted as met)."""
    parts = []
    for label, value in (("default steps", goal.get("measured")), ("compiled steps", goal.get("measured_compiled"))):
        value = _rounded(value)
        if value is None:
            continue
        modes = value if isinstance(value, dict) else {"": value}
        shown = [f"{mode + ' ' if mode else ''}{v} ({'met' if v >= goal['goal'] else 'not met'})" if v is not None
                 else f"{mode} not measured" for mode, v in modes.items()]
        parts.append(f"{label}: " + ", ".join(shown))
    return f"{key} ≥ {goal['goal']}: " + ("; ".join(parts) if parts else "not measured")


def render_decode(name: str, data: dict) -> list[str]:
    cfg, env = data["config"], data.get("env", {})
    variants = set(cfg.get("variants") or {r["variant"] for r in data["rows"]})
    kind = ", compiled steps (opt-in: `serve --compile-decode`)" if variants == {"engine_compiled"} else ""
    out = [f"### Decode speed{kind} — {env.get('gpu', 'CPU')}", ""] + _provenance(name, data)
    if data.get("source"):  # a run cut short: where its rows come from
        out += [f"Rows: {data['source']}.", ""]
    out += [f"Greedy decoding after a {cfg['context_tokens']}-token context in blocks of {cfg['block_tokens']}, "
            f"{cfg['new_tokens']} new tokens, each brought to the host. engine: the defaults (CUDA: no cuDNN SDPA, "
            "decode graphs, merged LoRA, fused norms / rotary / SwiGLU where the run has them); engine_unfused: the "
            "defaults without the fused ops; engine_eager: decode graphs and merge off; hf_generate: plain "
            "transformers `generate` (SDPA, DynamicCache). Batched rows: `decode_batch` over that many streams.", "",
            "| model | variant | mode | streams | tokens/s per stream | tokens/s total | ms per token (step) |",
            "|---|---|---|---:|---:|---:|---:|"]
    for r in data["rows"]:
        per = r.get("tokens_per_s", r.get("per_stream_tokens_per_s"))
        if per is None:
            continue
        variant = r['variant'] + (' (batched)' if r.get('batched') else '')
        out.append(f"| {r['model']} | {variant} | {r['mode']} | {r['streams']} | {_fmt(per, '{:.1f}')} | "
                   f"{_fmt(r.get('total_tokens_per_s', per), '{:.1f}')} | "
                   f"{_fmt(r.get('ms_per_token', r.get('ms_per_step')))} |")
    for s in data.get("skipped", []):
        out.append(f"\nSkipped: {s}")
    goals = [_decode_goal(k, g) for k, g in (data.get("goals") or {}).items()]
    if goals:
        out += ["", "Goals (issue 10): " + "; ".join(goals) + "."]
    return out + _image(name, "decode speed") + [""]


def render_load(name: str, data: dict) -> list[str]:
    c = data["config"]
    out = ["### Server under load", ""] + _provenance(name, data)
    out += [f"{c['clients']} concurrent clients × {c['requests']} requests ({c['max_tokens']} new tokens each) "
            f"against `blockattn serve` with {c['model']}, {data['env'].get('cpu_threads')} CPU threads; "
            "max batch = how many running generations the server decodes in one forward (1 = one at a time).", "",
            "| max batch | requests | errors | throughput req/s | p50 ms | p90 ms | p99 ms | cached blocks | "
            "computed blocks |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in data.get("runs") or [{"max_batch": None, "summary": data["summary"]}]:
        s, lat = run["summary"], run["summary"]["latency_ms"]
        out.append(f"| {run['max_batch'] or 'n/a'} | {s['requests']} | {s['errors']} | "
                   f"{_fmt(s['throughput_rps'], '{:.3f}')} | {_fmt(lat['p50'], '{:.0f}')} | "
                   f"{_fmt(lat['p90'], '{:.0f}')} | "
                   f"{_fmt(lat['p99'], '{:.0f}')} | {s['blocks']['cached']} | {s['blocks']['computed']} |")
    for r in data.get("ratios", []):
        out += ["", f"max batch {r['max_batch']} against {data['runs'][0]['max_batch']} (same run): throughput "
                f"×{r['throughput_vs_first']:.2f}, p50 ×{r['p50_vs_first']:.2f}, p99 ×{r['p99_vs_first']:.2f}."]
    return out + [""]


def render_serve(name: str, data: dict) -> list[str]:
    """T5 serving: `blockattn bench serve` (block-mode server vs full-mode server vs plain generate); a report
    of another schema is rendered generically."""
    if "phases" not in data:
        return paper_tables.render_speed_generic(name, data)
    c, env = data["config"], data.get("env", {})
    out = [f"### Serving like real use — {env.get('gpu') or data.get('machine', 'CPU')}", ""] + _provenance(name, data)
    corpus = data.get("corpus") or {}
    out += [f"{c['model']}; RAG requests over {corpus.get('documents', 'n/a')} HotpotQA paragraphs (mean "
            f"{_fmt(corpus.get('document_tokens_mean'), '{:.0f}')} tokens), drawn with Zipf popularity "
            f"(exponent {c['zipf']}, seed {c['seed']}) to ~{c['context_tokens']} context tokens per request, "
            f"≤ {c['new_tokens']} greedy new tokens, closed-loop clients. block / full: `blockattn serve --mode "
            "block|full` over loopback, streamed; hf_generate: plain transformers `generate` (SDPA, DynamicCache) "
            f"in the benchmark's process, at most {c['hf_max_batch']} requests per call. TTFT: request sent → "
            "first content chunk." + (" Both servers ran the model in a process of its own (`serve "
                                      "--engine-process`)." if c.get("engine_process") else "")
            + (" **Partial run** (cut at its budget)." if data.get("partial") else ""), "",
            "| mode | clients | ok / requests | docs per request | TTFT p50 ms | TTFT p99 ms | tokens/s per stream | "
            "tokens/s total | requests/s | hit rate | GPU GB | cut short |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in data["phases"]:
        s = p["summary"]
        out.append(f"| {p['mode']} | {p['clients']} | {s['ok']} / {s['requests']} | "
                   f"{_fmt(p.get('documents_per_request_mean'), '{:.1f}')} | {_fmt(s['ttft_ms']['p50'], '{:.1f}')} | "
                   f"{_fmt(s['ttft_ms']['p99'], '{:.1f}')} | "
                   f"{_fmt(s['decode_tokens_per_s_per_stream']['p50'], '{:.1f}')} | "
                   f"{_fmt(s['tokens_per_s_total'], '{:.1f}')} | {_fmt(s['requests_per_s'], '{:.2f}')} | "
                   f"{_fmt(s['cache']['hit_rate'], '{:.3f}')} | {_fmt(s.get('gpu_max_allocated_gb'), '{:.2f}')} | "
                   f"{'yes' if p['cut_short'] else 'no'} |")
    by = {(p["mode"], p["clients"]): p["summary"] for p in data["phases"]}
    for r in data.get("ratios", []):
        hit = (by.get(("block", r["clients"])) or {}).get("cache", {}).get("hit_rate")
        ratio = r.get("ttft_p50_block_over_full")
        verdict = ("n/a" if ratio is None or hit is None else
                   "met" if ratio <= 0.25 and hit >= 0.8 else "not met" if hit >= 0.8 else "hit rate below 80 %")
        interval = r.get("ttft_p50_block_over_full_ci95")
        within = "" if not interval else f" [95 % bootstrap interval {interval[0]:.2f}–{interval[1]:.2f}]"
        out += ["", f"{r['clients']} clients: block / full TTFT p50 ×{_fmt(ratio)}{within}, p99 "
                   f"×{_fmt(r.get('ttft_p99_block_over_full'))}; block / hf_generate TTFT p50 "
                   f"×{_fmt(r.get('ttft_p50_block_over_hf_generate'))}; block / full tokens/s total "
                   f"×{_fmt(r.get('tokens_per_s_total_block_over_full'))}. Goal (block TTFT p50 ≤ 0.25× full at ≥ 80 % "
                   f"hit rate): {verdict}."]
    timings = [(p["clients"], p["summary"].get("server_timings_ms_p50") or {}) for p in data["phases"]
               if p["mode"] == "block"]
    if any(t for _, t in timings):
        out += ["", "Block-mode server, where the time before the first token went (median ms per request): " +
                "; ".join(f"{n} clients: " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()) for n, t in timings)
                + ". keys and lookup are parts of blocks; query is not synchronised."]
    split = [(p["mode"], p["clients"], p["summary"].get("worker")) for p in data["phases"]]
    if any(w for _, _, w in split):
        out += ["", "The model thread per phase (its wall time admitting = prefills and first tokens, decoding, idle; "
                    "jobs started and milliseconds per loop):", "",
                "| mode | clients | admit s | decode s | idle s | loops | jobs per loop | ms per loop |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for mode, clients, w in split:
            if w:
                sec = w["seconds"]
                out.append(f"| {mode} | {clients} | {sec['admit']:.2f} | {sec['decode']:.2f} | {sec['idle']:.2f} | "
                           f"{w['loops']} | {w['admitted_per_loop']:.2f} | {w['ms_per_loop']:.2f} |")
    return out + _image(name, "serving TTFT") + [""]


def _single_client_spread(rows: list[dict]) -> str:
    """With one client the settings have little to act on (no queue, one job per step), so the spread of its
    TTFT p50 across the runs shows their run-to-run noise."""
    parts = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        values = [r["ttft_p50_ms"] for r in rows if r["clients"] == 1 and r["mode"] == mode and r["ttft_p50_ms"]]
        if len(values) > 1:
            parts.append(f"{mode} {min(values):.1f}–{max(values):.1f} ms")
    return (" At 1 client, where the settings have little to act on, TTFT p50 spread across the runs: "
            + ", ".join(parts) + ": differences within that are noise.") if parts else ""


def render_serve_compare(name: str, data: dict) -> list[str]:
    """`blockattn bench serve-compare`: server settings side by side, each over the first (baseline) run."""
    c = data["config"]
    out = [f"### {data['title']} — {data.get('machine')}", ""] + _provenance(name, data)
    runs = "; ".join(f"{r['run']}: {r['setting']} (`{r['file']}`{', partial' if r.get('partial') else ''})"
                     for r in data["runs"])
    out += [f"{c['model']}, ~{c['context_tokens']} context tokens, ≤ {c['new_tokens']} new tokens. Runs: {runs}. "
            "×: over run 0 at the same clients and mode. Runs made one after another on one machine, each setting "
            "once." + _single_client_spread(data["rows"]), "",
            "| clients | mode | setting | requests/s | × | tokens/s total | TTFT p50 ms | × | TTFT p99 ms |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        out.append(f"| {r['clients']} | {r['mode']} | {r['setting']} | {_fmt(r['requests_per_s'])} | "
                   f"{_fmt(r['requests_per_s_over_baseline'])} | {_fmt(r['tokens_per_s_total'], '{:.0f}')} | "
                   f"{_fmt(r['ttft_p50_ms'], '{:.1f}')} | {_fmt(r['ttft_p50_ms_over_baseline'])} | "
                   f"{_fmt(r['ttft_p99_ms'], '{:.1f}')} |")
    ratios = [r for r in data.get("block_over_full", []) if r.get("ttft_p50_block_over_full") is not None]
    if ratios:
        out += ["", "Block / full TTFT p50 within each run (goal ≤ 0.25): " + "; ".join(
            f"{r['setting']} at {r['clients']}: ×{r['ttft_p50_block_over_full']:.2f}" for r in ratios) + "."]
    return out + _image(name, "serving settings") + [""]


def render_distill_gpu(name: str, data: dict) -> list[str]:
    out = ["### Block distillation vs block fine-tuning — GPU run", ""] + _provenance(name, data)
    out += ["| objective | steps | tokens | train s | tokens/s | probe KL start → end | peak GB |",
            "|---|---:|---:|---:|---:|---|---:|"]
    for objective in ("distill", "block_ft"):
        s = (data.get(objective) or {}).get("summary")
        if s:
            kl = s.get("probe_kl") or {}
            out.append(f"| {objective} | {s['steps']} | {s['tokens']} | {_fmt(s.get('train_seconds'), '{:.1f}')} | "
                       f"{_fmt(s.get('tokens_per_s'), '{:.0f}')} | {_fmt(kl.get('start'), '{:.3f}')} → "
                       f"{_fmt(kl.get('end'), '{:.3f}')} | {_fmt(s.get('peak_memory_gb'), '{:.1f}')} |")
    ev = data.get("eval") or {}
    if ev.get("ppl"):
        out += ["", "| variant | ΔPPL (block − full), held-out query blocks |", "|---|---:|"]
        out += [f"| {p['variant']} | {p['delta_ppl']:.3f} |" for p in ev["ppl"]]
        out += ["", "ΔPPL compares each variant in block mode with the base model under full attention. Block-FT "
                "trains with cross-entropy on this kind of text, so its block-mode perplexity can fall below the "
                "base model's (ΔPPL < 0); distillation targets the base model's own predictions, so its best is 0."]
    if ev.get("needles"):
        counts = sorted({int(d) for n in ev["needles"] for d in n["by_docs"]})
        out += ["", "Planted-fact retrieval accuracy (greedy), by number of documents:", "",
                "| variant | " + " | ".join(f"{d} docs" for d in counts) + " |", "|---|" + "---:|" * len(counts)]
        for n in ev["needles"]:
            out.append(f"| {n['variant']} | " + " | ".join(_fmt((n['by_docs'].get(str(d)) or {}).get('accuracy'),
                                                              '{:.3f}') for d in counts) + " |")
    return out + _image(name, "distillation curves") + [""]


def render_segmentation(name: str, data: dict) -> list[str]:
    methods = data["methods"]
    what = "Segmentation quality" if "learned" in methods else "Segmentation baselines (reused by the report above)"
    out = [f"### {what} — {data['split']} split of `{Path(data['data']).name}` ({data['n_docs']} documents)",
           ""] + _provenance(name, data)
    if data.get("note"):
        out += [str(data["note"]), ""]
    out += ["At the gold number of blocks; lower Pk/WindowDiff is better.", "",
            "| method | Pk | WindowDiff | F1 | F1 ±1 |", "|---|---:|---:|---:|---:|"]
    for m in methods:
        o = data["overall"][m]
        out.append(f"| {m} | {o['pk']:.3f} | {o['windowdiff']:.3f} | {o['f1']:.3f} | {o['f1_tol1']:.3f} |")
    if "learned" in methods and len(methods) > 1:
        cats = data.get("per_category", {})
        wins = [c for c, v in cats.items()
                if all(v["learned"][k] < v[m][k] for m in methods if m != "learned" for k in ("pk", "windowdiff"))]
        out += ["", f"Learned better than every baseline on both Pk and WindowDiff in {len(wins)} of {len(cats)} "
                "categories."]
        out += _markup_table(data)
    ratios = data.get("free_level_count_ratio")
    if ratios:
        out += ["", "Free `--level` decoding, block count / that level's gold count (median [quartiles], "
                "documents): " + "; ".join(f"{lv} {r['median']:.2f} [{r['q1']:.2f}–{r['q3']:.2f}], {r['n_docs']}"
                                           for lv, r in ratios.items()) + "."]
        asked = data.get("level_mean_tokens")
        if asked and all("gold_block_tokens" in r for r in ratios.values()):
            out += ["", "Tokens per block, what `--level` asks for (calibrated on SemanticSeg train + validation) "
                    "against this data's gold (median): " + "; ".join(
                        f"{lv} {asked[lv]:.0f} vs {r['gold_block_tokens']:.0f}" for lv, r in ratios.items()) + "."]
    return out + _image(name, "segmentation") + [""]


def _markup_table(data: dict) -> list[str]:
    """WindowDiff with and without the text's own headings shown (`by_markup`), learned against the best
    baseline of each subset."""
    subsets = data.get("by_markup") or {}
    baselines = [m for m in data["methods"] if m != "learned"]
    if not subsets or not baselines:
        return []
    out = ["", "WindowDiff by whether the text shows its headings (mean over documents):", "",
           "| documents | n | learned | best baseline | learned / best |", "|---|---:|---:|---:|---:|"]
    for label, scores in subsets.items():
        best = min(baselines, key=lambda m: scores[m]["windowdiff"])
        learned, base = scores["learned"]["windowdiff"], scores[best]["windowdiff"]
        out.append(f"| {label} | {scores['n_docs']} | {learned:.3f} | {best} {base:.3f} | {learned / base:.2f}× |")
    return out


def render_distill_cpu(name: str, data: dict) -> list[str]:
    out = ["### Distillation on CPU", "", f"Source: `reports/{name}`  ", f"Where: {data.get('machine', 'CPU')}", ""]
    smoke = data.get("smoke")
    if smoke:
        out += ["Smoke config (tiny random-weight model): " + "; ".join(f"`{c}`" for c in smoke["commands"]), "",
                "| objective | steps | tokens | tokens/s | probe KL start → end | wall s |",
                "|---|---:|---:|---:|---|---:|"]
        for objective in ("distill", "block_ft"):
            s = smoke[objective]
            out.append(f"| {objective} | {s['steps']} | {s['tokens']} | {s['tokens_per_s']:.0f} | "
                       f"{s['probe_kl']['start']:.3f} → {s['probe_kl']['end']:.3f} | "
                       f"{smoke['wall_seconds'][objective]:.1f} |")
        out.append("")
    real = data.get("smollm2_cpu_training")
    if real:
        out += [f"SmolLM2-135M training throughput on CPU: distill {real['distill']['tokens_per_s']:.1f} tokens/s, "
                f"block-FT {real['block_ft']['tokens_per_s']:.1f} tokens/s (`{real['command']}`).", ""]
    needles = data.get("smollm2_needles_4_docs")
    if needles:
        out += ["Planted-fact retrieval, 4 documents, SmolLM2 on CPU: full "
                f"{needles['full']['accuracy']:.3f}, zero-shot block {needles['zero_shot_block']['accuracy']:.3f} "
                f"({needles['full']['items']} items; " + "; ".join(f"`{c}`" for c in needles["commands"]) + ").", ""]
    return out


def render_segmentation_speed(name: str, data: dict) -> list[str]:
    out = ["### Segmentation speed", ""] + _provenance(name, data)
    out += [f"{data['cpu_count']} CPU cores; documents from the {data['split']} split.", "",
            "| method | documents | tokens | tokens/s |", "|---|---:|---:|---:|"]
    for method, t in data["throughput"].items():
        out.append(f"| {method} | {t['documents']} | {t['tokens']} | {t['tokens_per_s']:.0f} |")
    e2e = data.get("end_to_end_32k")
    if e2e:
        out += ["", f"A {e2e['tokens']}-token document end to end, process start included (`{e2e['command']}`): "
                f"median {e2e['wall_s_median']:.2f} s over {len(e2e['wall_s_all'])} runs. Goals: learned ≥ "
                f"{data['goals']['learned_tokens_per_s']} tokens/s, 32k end to end ≤ "
                f"{data['goals']['end_to_end_32k_s']} s."]
    return out + [""]


def render_segmentation_train(name: str, data: dict) -> list[str]:
    out = ["### Segmenter training", ""] + _provenance(name, data)
    out += [f"{data['train_documents']} training documents, {data['steps']} steps (seed {data['seed']}); best "
            f"validation WindowDiff {data['best_val_windowdiff']:.4f} at step {data['best_step']}; its weights "
            f"(`{data['weights']}` when written): {data['weights_bytes'] / 1e6:.1f} MB, {data['total_parameters']:,} "
            f"parameters ({data['tagger_parameters']:,} in the tagger). Machine: {data['machine']}."]
    if data.get("note"):
        out += ["", data["note"]]
    for run in data.get("not_shipped", []):  # candidates measured against the shipped weights and kept out
        out += ["", f"Not shipped: {run['what']}. `{run['command']}` (data built at {run['data_built_at']}; "
                f"{run['train_documents']} training documents, {run['wall_s'] / 60:.0f} min, "
                + (f"peak {run['peak_rss_mb'] / 1024:.1f} GB" if run.get("peak_rss_mb") else "peak memory not measured")
                + f", {run['machine']}).", "",
                "| WindowDiff at the gold count on | shipped | candidate | command |", "|---|---:|---:|---|"]
        out += [f"| {c['on']} | {c['shipped']:.4f} | {c['candidate']:.4f} | `{c['command']}` |"
                for c in run["comparisons"]]
        paired = dict(run.get("paired") or {})
        if paired:
            command = paired.pop("command", "")
            out += ["", f"Paired over documents, candidate − shipped, mean [95 % interval] (`{command}`): "
                    + "; ".join(f"{k}: {v}" for k, v in paired.items()) + "."]
        out += ["", f"Verdict: {run['verdict']}."]
    return out + [""]


def render_segmentation_ensemble(name: str, data: dict) -> list[str]:
    """Weights files (and ensembles of them) side by side on the same documents (scripts/compare_segmenters.py)."""
    title = data.get("title") or "Learned segmenter: trainings and their ensembles"
    out = [f"### {title}", ""] + _provenance(name, data)
    if data.get("note"):
        out += [data["note"], ""]
    names = list(data["weights"])
    out += ["Mean WindowDiff at the gold count (lower is better); `+` = an ensemble (the members' log-odds "
            "averaged).", "", "| documents | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    for set_name, s in data["sets"].items():
        best = min(s["mean_windowdiff"].values())
        cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in s["mean_windowdiff"].values()]
        out.append(f"| {set_name} ({s['n_docs']}) | " + " | ".join(cells) + " |")
    shown = data.get("paired_shown") or names[1:]
    out += ["", f"Paired over documents, minus {names[0]}: mean [95 % interval], documents better / worse:"]
    for set_name, s in data["sets"].items():
        parts = [f"{k} {v['mean']:+.4f} [{v['ci95'][0]:+.4f}, {v['ci95'][1]:+.4f}] {v['better']}/{v['worse']}"
                 for k, v in s["paired_vs_first"].items() if k in shown]
        out.append(f"- {set_name}: " + "; ".join(parts))
    if data.get("verdict"):
        out += ["", f"Verdict: {data['verdict']}."]
    return out + [""]

def render_semanticseg_levels(name: str, data: dict) -> list[str]:
    where = f" of `{data['data']}`" if data.get("data") else ""
    out = [f"### SemanticSeg gold levels{where}", ""] + _provenance(name, data)
    if data.get("note"):
        out += [data["note"], ""]
    out += [f"Block tokens: median [quartiles] over the blocks of {data['sampled_per_category']} instances per "
            "category (seed " f"{data['seed']}).", "",
            "| category | instances | coarse ≠ fine | three distinct | coarse | medium | fine |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for cat, c in data["categories"].items():
        cells = [f"{q['median']:.0f} [{q['q1']:.0f}–{q['q3']:.0f}]" if q else "–" for q in c["block_tokens"].values()]
        out.append(f"| {cat} | {c['instances']} | {100 * c['coarse_ne_fine']:.1f} % | "
                   f"{100 * c['three_distinct']:.1f} % | " + " | ".join(cells) + " |")
    return out + [""]


def render_kv_sharing(name: str, data: dict) -> list[str]:
    sh, down, disk = data["sharing"], data["outage"], data["disk"]
    out = ["### Replicas sharing one block store (Redis) and a budgeted disk tier", ""] + _provenance(name, data)
    out += [data["setup"] + ".", "",
            "| measure | value |", "|---|---:|",
            f"| requests across the 2 replicas (alternating) | {sh['requests']} ({sh['failed']} failed) |",
            f"| blocks looked up / first computations / computed | {sh['blocks']} / {sh['first_computations']} / "
            f"{sh['computed']} |",
            f"| hit rate of repeated blocks (after their first computation anywhere) | "
            f"{_fmt(sh['repeat_hit_rate'] and 100 * sh['repeat_hit_rate'], '{:.1f} %')} |",
            f"| ... of which served by Redis (computed by the other replica) | {sh.get('hits_from_redis', 'n/a')} |",
            f"| requests while Redis was SIGKILLed / failed | {down['requests']} / {down['failed']} |",
            f"| ... their latency p50 / max (s) | {down['latency_s']['p50']:.3f} / {down['latency_s']['max']:.3f} |",
            f"| ... Redis errors / calls skipped by the breaker (both replicas) | {down['remote_errors']:.0f} / "
            f"{down['remote_skipped']:.0f} |",
            f"| sharing again after Redis came back (s) | {down['sharing_again_after_s']} |",
            f"| disk: {disk['processes']} processes × {disk['threads_per_process']} clients, {disk['seconds']} s, "
            f"budget {disk['budget_entries']} entries: reads / errors / wrong or corrupt reads | {disk['reads']} / "
            f"{disk['errors']} / {disk['wrong'] + disk['corrupt']} |",
            f"| disk: peak entry bytes / budget (over budget, in entries) | {disk['peak_bytes']} / "
            f"{disk['budget_bytes']} ({disk['peak_over_budget_entries']:.2f}) |"]
    return out + [""]


def render_fuzz_server(name: str, data: dict) -> list[str]:
    out = ["### Fuzzed request bodies against the server", ""] + _provenance(name, data)
    statuses = ", ".join(f"{k}: {v}" for k, v in data["statuses"].items())
    out += [f"{data['bodies']} Hypothesis-generated bodies (random JSON, unicode, sizes, nesting, raw bytes; seed "
            f"{data['seed']}) against {data['server']}, in {data['seconds']} s. Statuses: {statuses}. "
            f"5xx: {data['count_5xx']}; dropped connections: {data['transport_errors']}; the worker answered "
            f"{data['alive_checks'] - data['alive_failures']} of {data['alive_checks']} liveness checks.", ""]
    return out


def render_query_attention(name: str, data: dict) -> list[str]:
    """scripts/gpu/probe_query_attention.py: ms per layer of each way the query step can attend."""
    out = [f"### {data['title']}", ""] + _provenance(name, data)
    ways = [w for w in ("matmul", "sdpa", "flash", "flash_split", "exact")
            if any(f"{w}_ms" in r or f"{w}_error" in r for r in data["rows"])]  # a way that failed: "failed"
    out += ["matmul: the static step's two matmuls over the whole buffer; sdpa: masked SDPA over it; flash: "
            "flash's variable-length kernel over the request's keys, in place, the context as one sequence; "
            "flash_split: the same, the context in chunks merged by log-sum-exp (split-KV); exact: SDPA over exactly the "
            "request's keys (the eager forward; not capturable). ms per layer, CUDA events.", "",
            "| context | buffer slots | " + " | ".join(ways) + " |", "|---:|---:|" + "---:|" * len(ways)]
    for row in data["rows"]:
        cells = [f"{row[f'{w}_ms']:.3f}" if f"{w}_ms" in row else "failed" for w in ways]
        out.append(f"| {row['context']} | {row['capacity']} | " + " | ".join(cells) + " |")
    if not data.get("flash_varlen"):
        out += ["", f"Flash's variable-length kernel was not used: {data.get('flash_varlen_error')}"]
    return out + [""]


def render_serve_prefill_profile(name: str, data: dict) -> list[str]:
    """scripts/gpu/profile_serve_prefill.py: a serving-shaped block-mode prefill, phase by phase, and where its
    host and device time go."""
    cfg = data["config"]
    out = [f"### {data['title']} ({name})", ""] + _provenance(name, data)
    phases = ", ".join(f"{k} {v:.2f}" for k, v in data["phases_ms_median_synced"].items())
    out += [f"SmolLM2 shape, random weights, bf16; {cfg['requests']} requests of {cfg['blocks']} blocks of 100-170 "
            f"tokens, {cfg['new']} of them not cached yet. Phases, device-synchronised (median ms): {phases}. "
            f"One prefill unsynchronised: {data['prefill_ms_median_unsynced']:.2f} ms.", "",
            "Host time per request (self CPU ms, top 6): " + "; ".join(
                f"{r['name']} {r['self_cpu_ms']:.2f} ({r['calls']:g}×)" for r in data["host_top_per_request"][:6]),
            "", "Device time per request (ms, top 6): " + "; ".join(
                f"{r['name'][:48]}… {r['self_device_ms']:.2f} ({r['calls']:g}×)"
                for r in data["device_top_per_request"][:6]), ""]
    return out


def render_generic(name: str, data: dict) -> list[str]:
    """Provenance, then the report's own `note` and `summary` lines (derived from its data when it was
    written), for reports without a renderer of their own."""
    out = [f"### {data.get('title') or name}", ""] + _provenance(name, data)
    if data.get("note"):
        out += ["", str(data["note"])]
    if data.get("summary"):
        out += [""] + [f"- {line}" for line in data["summary"]]
    return out + [""]


RENDERERS: dict[str, Renderer] = {
    "bench_attention": render_attention,
    "bench_ttft": render_ttft,
    "bench_decode": render_decode,  # T5 decode speed (its schema is known: no generic T5 table)
    "load": render_load,
    "kv_sharing": render_kv_sharing,
    "fuzz_server": render_fuzz_server,
    "distill_h200": render_distill_gpu,
    "distill_cpu": render_distill_cpu,
    "segmentation": render_segmentation,
    "segmentation_speed": render_segmentation_speed,
    "segmentation_train": render_segmentation_train,
    "segmentation_ensemble": render_segmentation_ensemble,
    "semanticseg_levels": render_semanticseg_levels,
    "quality_": paper_tables.render_quality,  # T2 + T4
    "segkl_": paper_tables.render_segkl,  # T3
    "hotpot_errors": paper_tables.render_hotpot_errors,  # T2 diagnostic
    "sensitivity_": paper_tables.render_sensitivity,  # F1
    "bench_serve": render_serve,  # T5 serving
    "bench_serve_compare": render_serve_compare,
    "probe_query_attention": render_query_attention,
    "profile_serve_prefill": render_serve_prefill_profile,
}


def _rounded(value):
    """A goal's measurement for the page: numbers to one decimal, mode dicts entry by entry."""
    if isinstance(value, dict):
        if not any(v is not None for v in value.values()):
            return None
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 1) if isinstance(value, float) else value


def renderer_for(name: str) -> Renderer:
    """The renderer of the longest registered prefix of `name` (e.g. `segmentation_speed` before
    `segmentation`); the generic one when none matches."""
    prefixes = [p for p in RENDERERS if name.startswith(p)]
    return RENDERERS[max(prefixes, key=len)] if prefixes else render_generic


def build(reports: Path | None = None) -> str:
    reports = reports or REPORTS
    paths = sorted(reports.glob("*.json"))
    lines = ["# Results", "",
             "Generated by `python -m blockattn.reports` from the JSON files in `reports/`; do not edit by hand.",
             "Each section names the command that produced its numbers and where it ran.", ""]
    loaded = {p.name: json.loads(p.read_text()) for p in paths}
    lines += paper_claims.render(loaded)
    lines += paper_tables.index(loaded)
    lines += ["## Reports", ""]
    for name, data in loaded.items():
        lines += renderer_for(name)(name, data)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = build()
    if "--check" in args:
        current = RESULTS.read_text() if RESULTS.is_file() else ""
        if current != text:
            print(f"{RESULTS} is stale: run `python -m blockattn.reports`", file=sys.stderr)
            return 1
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
