"""`blockattn bench serve`: a serving benchmark that looks like real use (issue 10, deliverable 4).

Three ways to answer the same requests, side by side in one run:

    block        `blockattn serve --mode block`: documents are cached context blocks (a real server process,
                 over loopback, streamed)
    full         `blockattn serve --mode full`: the same server, every request full attention on the base weights
    hf_generate  plain transformers `generate` (SDPA, DynamicCache) in this process: what a user would do
                 otherwise -- one thread running `generate` over the requests waiting (left-padded, at most
                 `hf_max_batch` together); TTFT from a streamer's first new token

Requests are RAG prompts over real documents: the HotpotQA paragraphs (title + text) of dev500.jsonl.gz. Each
request draws documents by Zipf popularity (seeded; popular paragraphs recur across requests, as in real use),
in random order, of their own varied lengths, until ~`context_tokens` tokens, plus a HotpotQA question. Every
mode answers the very same request sequence (greedy, `new_tokens` at most).

Each client count is a phase per mode: warm-up requests (not measured), then measured requests from that many
closed-loop clients, bounded by count and by the phase's share of `time_budget_s` (a phase cut short by time
says so). Per phase: TTFT p50/p99 (request sent → first content chunk), decode tokens/s per stream (after the
first token) and in total, requests/s, errors, the block cache's hit rate over the measured requests (from the
server's /metrics), the server's GPU memory (torch max_memory_allocated), and where the server's time before
the first token went (tokenize, keys, lookup, blocks, assemble, query; medians from each response's usage).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from blockattn.bench.load import percentile
from blockattn.bench.loadgen import ClientProcesses, closed_loop, local_take, open_client, stream_request
from blockattn.bench.stats import median_ratio_interval
from blockattn.errors import UserError
from blockattn.reportio import provenance, save_figure, write_report

MODES = ("block", "full", "hf_generate")
SERVER_MODES = ("block", "full")
TINY = "tiny"  # --model tiny: a tiny random model with the SmolLM2 tokenizer (tests, smoke runs)


@dataclass
class ServeBenchConfig:
    model: str = "smollm2-135m-instruct"
    device: str = "cuda"
    clients: list[int] = field(default_factory=lambda: [1, 8, 64])
    modes: list[str] = field(default_factory=lambda: list(MODES))
    context_tokens: int = 8192  # documents per request are drawn until about this many tokens
    new_tokens: int = 32  # greedy tokens per request, at most (a stop token may end it sooner)
    requests: int = 0  # measured requests per phase; 0: 4 per client, at least MIN_MEASURED
    warmup: int = 0  # unmeasured requests per phase in block mode (the others take 4: they cache no K/V, their
    #                  warm-up only heats kernels); 0: one per client, at least 96 (the block cache's hit rate
    #                  settles: 8 warm-up requests left it at 0.58 over the first phase, H200 run 2026-12-02; 48
    #                  left it at 0.77 at one client, 2026-12-04, below the 80 % that issue 10's goal is stated at)
    time_budget_s: float = 90.0  # all measured phases together; each phase gets an equal share
    zipf: float = 1.1  # popularity exponent: document of rank r drawn with weight 1 / r**zipf
    seed: int = 0
    adapter: str = "default"  # the block-mode server's --adapter
    max_batch: int = 64  # the servers' --max-batch
    hf_max_batch: int = 16  # most requests one plain `generate` call takes together
    request_timeout_s: float = 300.0
    corpus: str | None = None  # HotpotQA file; None: $BLOCKATTN_HOTPOTQA or ../shared/data/hotpotqa/dev500.jsonl.gz
    # the servers run the model in a process of their own (`serve --engine-process`); None: the servers' own
    # default (on with CUDA, off on the CPU; `blockattn bench serve` records it resolved)
    engine_process: bool | None = None
    admit_per_step: int = 4  # the servers' --admit-per-step
    # the servers' --group-prefill (the missing blocks of requests admitted together in one prefill); None: the
    # servers' own default (on with CUDA, off on the CPU; `blockattn bench serve` records it resolved)
    group_prefill: bool | None = None
    # load-generator processes per server phase (loadgen.ClientProcesses); 0: one per 16 clients, at most a
    # quarter of this machine's cores (so 1 on a 2-core machine)
    client_processes: int = 0


# ---------------------------------------------------------------- corpus and requests
@dataclass
class Corpus:
    documents: list[str]  # unique paragraphs, "title\ntext"
    tokens: np.ndarray  # (n,) each document's token count as one block
    questions: list[str]


def load_corpus(tokenizer, path: str | None = None) -> Corpus:
    """The unique paragraphs and the questions of a HotpotQA file, each paragraph's block length counted."""
    from blockattn.engine.prompt import encode_documents
    from blockattn.data.hotpotqa import load_items

    items = load_items(path)
    documents = list(dict.fromkeys(p for item in items for p in item.paragraphs))
    if not documents:
        raise UserError("the HotpotQA file holds no paragraphs")
    lengths = np.array([len(t) for t in encode_documents(tokenizer, documents)])
    return Corpus(documents, lengths, [item.question for item in items])


def popularity(corpus: Corpus, seed: int) -> np.ndarray:
    """rank → document: one seeded permutation, the same for every phase of a run (popular stays popular)."""
    return np.random.default_rng(seed).permutation(len(corpus.documents))


def plan(corpus: Corpus, rank_of: np.ndarray, n: int, context_tokens: int, zipf: float,
         rng: np.random.Generator, per_document: int = 0) -> list[dict]:
    """`n` requests: {"documents": [indices], "question": str}. Each takes distinct documents by Zipf weight of
    their popularity rank (`rank_of`: rank → document), in the order drawn (random), until the next would pass
    `context_tokens` (at least one document); each document counts its tokens + `per_document` (sink
    positions in block mode)."""
    weights = 1.0 / np.arange(1, len(rank_of) + 1) ** zipf
    weights /= weights.sum()
    requests = []
    for _ in range(n):
        chosen, total = [], 0
        for rank in rng.choice(len(rank_of), size=4 * len(rank_of), p=weights):
            doc = int(rank_of[rank])
            if doc in chosen:
                continue
            if chosen and total + corpus.tokens[doc] + per_document > context_tokens:
                break
            chosen.append(doc)
            total += int(corpus.tokens[doc]) + per_document
        requests.append({"documents": chosen, "question": corpus.questions[int(rng.integers(len(corpus.questions)))]})
    return requests


# measured requests of a phase at least (unless --requests): with 16, two H200 runs a few commits apart read
# 1-client p50 ratios of ×0.30 and ×0.24 (2026-12-04); 48 take ~6 s per mode at 1 client on a GPU
MIN_MEASURED = 48


def phase_plan(corpus: Corpus, cfg: ServeBenchConfig, index: int, clients: int, budget: int | None = None,
               per_document: int = 0) -> tuple[list[dict], list[dict]]:
    """(warm-up requests, measured requests) of phase `index`: the same for every mode. `budget`: context
    positions per request (default `cfg.context_tokens`)."""
    rng = np.random.default_rng([cfg.seed, index + 1])
    warm = cfg.warmup or max(96, clients)
    measured = cfg.requests or max(MIN_MEASURED, 4 * clients)
    requests = plan(corpus, popularity(corpus, cfg.seed), warm + measured, budget or cfg.context_tokens, cfg.zipf,
                    rng, per_document)
    return requests[:warm], requests[warm:]


# ---------------------------------------------------------------- the two kinds of target
class ServerTarget:
    """A `blockattn serve` process, streamed to over loopback with httpx (TCP_NODELAY on the client too)."""

    def __init__(self, mode: str, model: str, cfg: ServeBenchConfig):
        import torch

        from blockattn.bench.serverproc import ServerProcess

        self.mode = mode
        args = ["--model", model, "--mode", mode, "--max-batch", str(cfg.max_batch), "--max-queue", "4096",
                "--admit-per-step", str(cfg.admit_per_step)]
        if cfg.group_prefill is not None:
            args.append("--group-prefill" if cfg.group_prefill else "--no-group-prefill")
        if cfg.engine_process is not None:
            args.append("--engine-process" if cfg.engine_process else "--no-engine-process")
        if mode == "block":
            args += ["--adapter", cfg.adapter]
        # as many CPU threads as plain generate gets here: one target runs at a time, the others idle (passive)
        self.process = ServerProcess(*args, device=cfg.device, timeout_s=600, threads=torch.get_num_threads())
        self.url = self.process.url

    async def open(self, cfg: ServeBenchConfig, corpus: Corpus, clients: int) -> None:
        self.client = open_client(self.url, cfg.request_timeout_s)
        processes = client_processes(cfg, clients)
        self.pool = (await asyncio.to_thread(ClientProcesses, self.url, corpus.documents, processes,
                                             cfg.request_timeout_s)) if processes > 1 else None

    async def close(self) -> None:
        await self.client.aclose()
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)

    async def request(self, corpus: Corpus, req: dict, cfg: ServeBenchConfig) -> dict:
        return await stream_request(self.client, corpus.documents, req, cfg.new_tokens)

    def metrics(self) -> dict[str, float]:
        return self.process.metrics()

    def stop(self) -> None:
        self.process.stop()


class _FirstToken:
    """A `generate` streamer that notes when the first new token arrives (`put` sees the prompt first)."""

    def __init__(self):
        self.calls, self.first = 0, None

    def put(self, _value) -> None:
        self.calls += 1
        if self.calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class HFTarget:
    """Plain transformers `generate` (SDPA, DynamicCache): one thread takes the requests waiting (at most
    `hf_max_batch`), left-pads them and generates them together. Static cache is not used: it pays off only
    under torch.compile, which would recompile for every new prompt length."""

    mode = "hf_generate"

    def __init__(self, model: str, cfg: ServeBenchConfig):
        import torch

        from blockattn.engine.prompt import stop_token_ids
        from blockattn.models import load

        self.torch, self.cfg = torch, cfg
        self.device = torch.device(cfg.device)
        loaded = load(model, dtype="bfloat16" if self.device.type == "cuda" else "float32", device=cfg.device)
        loaded.model.set_attn_implementation("sdpa")
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.stops = sorted(stop_token_ids(loaded.tokenizer, loaded.model.config))
        self.pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else self.stops[0]
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="hf-generate", daemon=True)
        self.thread.start()

    pool = None  # plain generate runs in this process: its clients are coroutines here

    async def open(self, cfg: ServeBenchConfig, corpus: Corpus, clients: int) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats()

    async def close(self) -> None:
        pass

    def tokens_of(self, question: str, documents: list[str]) -> list[int]:
        """The prompt the servers build: [prefix, documents..., query] as one sequence."""
        from blockattn.engine.prompt import build_chat_prompt

        built = build_chat_prompt(self.tokenizer, [{"role": "user", "content": question}], documents)
        return [t for block in built.all_blocks() for t in block]

    async def request(self, corpus: Corpus, req: dict, cfg: ServeBenchConfig) -> dict:
        start = time.perf_counter()
        future: Future = Future()
        # tokenized on the generate thread (part of TTFT, as the servers' tokenizing is)
        self.jobs.put(((req["question"], [corpus.documents[d] for d in req["documents"]]), future))
        try:
            first, end, n = await asyncio.wrap_future(future)
        except Exception as exc:  # noqa: BLE001
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": first is not None, "start": start, "first": first, "end": end, "tokens": n, "server": {},
                **({} if first is not None else {"error": "no token generated"})}

    def _run(self) -> None:
        while True:
            batch = [self.jobs.get()]
            if batch[0] is None:
                return
            while len(batch) < self.cfg.hf_max_batch:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            # a request cut short by the time budget cancelled its future meanwhile: settling it would raise and end
            # this thread, and the next phase would wait for it until killed (H200, 2026-12-04: no plot written)
            batch = [(text, future) for text, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = self._generate([self.tokens_of(*text) for text, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - the batch fails, the thread goes on
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                future.set_result(result)

    def _generate(self, prompts: list[list[int]]) -> list[tuple[float | None, float, int]]:
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: every row's next token comes at column `width`
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        streamer = _FirstToken()
        with torch.no_grad():
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                      max_new_tokens=self.cfg.new_tokens, do_sample=False, eos_token_id=self.stops,
                                      pad_token_id=self.pad, streamer=streamer)
        end = time.perf_counter()
        results = []
        for row in out[:, width:].tolist():
            n = next((i for i, t in enumerate(row) if t in self.stops), len(row))  # tokens before the stop token
            results.append((streamer.first, end, n))
        return results

    def metrics(self) -> dict[str, float]:
        torch = self.torch
        peak = torch.cuda.max_memory_allocated() if self.device.type == "cuda" else 0
        return {"blockattn_gpu_max_allocated_bytes": float(peak)}

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=60)


# ---------------------------------------------------------------- one phase
async def drive(target, corpus: Corpus, requests: list[dict], clients: int, cfg: ServeBenchConfig,
                deadline: float | None) -> tuple[list[dict], float, bool]:
    """`clients` closed-loop clients through `requests` (each takes the next one when its last is answered);
    none starts after `deadline`. In the target's load-generator processes where it has them. (records, elapsed
    seconds, cut short by the deadline)."""
    if target.pool is not None:
        return await asyncio.to_thread(target.pool.drive, requests, clients, cfg.new_tokens, deadline)
    started = time.perf_counter()
    records, cut = await closed_loop(lambda req: target.request(corpus, req, cfg), requests, clients, deadline,
                                     local_take(len(requests)))
    return records, time.perf_counter() - started, cut


def client_processes(cfg: ServeBenchConfig, clients: int) -> int:
    """Load-generator processes for a phase of `clients` clients (see `ServeBenchConfig.client_processes`)."""
    if cfg.client_processes:
        return max(1, min(cfg.client_processes, clients))
    return max(1, min(-(-clients // 16), (os.cpu_count() or 2) // 4))


def cache_counts(metrics: dict[str, float]) -> tuple[float, float]:
    """(block lookups served by any tier, blocks computed) from a /metrics scrape."""
    hits = sum(v for k, v in metrics.items() if k.startswith("blockattn_cache_hits_total"))
    return hits, metrics.get("blockattn_cache_misses_total", 0.0)


def graph_counts(before: dict, after: dict) -> dict:
    """CUDA-graph captures / replays / eager steps per kind during a phase, from two /metrics scrapes (empty
    where the server exports none: the CPU, plain generate)."""
    out: dict[str, dict[str, float]] = {}
    for name, value in after.items():
        for what in ("captures", "replays", "eager_steps"):
            prefix = f"blockattn_graph_{what}_total{{kind=\""
            if name.startswith(prefix):
                kind = name[len(prefix):].split('"')[0]
                out.setdefault(kind, {})[what] = value - before.get(name, 0.0)
    return out


def worker_split(before: dict, after: dict) -> dict:
    """The model thread during a phase, from two /metrics scrapes: seconds admitting (prefills, first tokens),
    decoding and idle, its loops, and the mean jobs started and milliseconds spent per loop."""
    delta = lambda name: after.get(name, 0.0) - before.get(name, 0.0)  # noqa: E731
    seconds = {phase: round(delta(f'blockattn_worker_seconds_total{{phase="{phase}"}}'), 3)
               for phase in ("admit", "decode", "idle")}
    loops = delta("blockattn_worker_loops_total")
    if not loops:
        return {}
    return {"seconds": seconds, "loops": int(loops), "decode_steps": int(delta("blockattn_worker_decode_steps_total")),
            "admitted_per_loop": round(delta("blockattn_worker_admitted_total") / loops, 3),
            "ms_per_loop": round(1e3 * sum(seconds.values()) / loops, 3)}


def summarise(records: list[dict], elapsed: float, before: dict, after: dict) -> dict:
    ok = [r for r in records if r["ok"]]
    ttft = [r["first"] - r["start"] for r in ok]
    per_stream = [(r["tokens"] - 1) / (r["end"] - r["first"]) for r in ok if r["tokens"] > 1 and r["end"] > r["first"]]
    tokens = sum(r["tokens"] for r in ok)
    ms = lambda v: None if v is None else round(v * 1e3, 2)  # noqa: E731
    # the hit rate from each request's own usage (blocks it found cached vs blocks computed for it): the tier
    # counters of /metrics count lookups, and with grouped prefill (`serve --group-prefill`) a block computed
    # for the group is then looked up and found by its request too, so they would count it twice
    hits = sum((r.get("server") or {}).get("cached_blocks", 0) for r in ok)
    computed = sum((r.get("server") or {}).get("computed_blocks", 0) for r in ok)
    looked_up = hits + computed
    tier_hits = cache_counts(after)[0] - cache_counts(before)[0]
    tier_computed = cache_counts(after)[1] - cache_counts(before)[1]
    timings: dict[str, list[float]] = {}
    for r in ok:
        for name, value in (r.get("server") or {}).get("timings_ms", {}).items():
            timings.setdefault(name, []).append(value)
        for name in ("ttft_ms", "queue_ms"):
            if name in (r.get("server") or {}):
                timings.setdefault(f"server_{name}", []).append(r["server"][name])
    peak = after.get("blockattn_gpu_max_allocated_bytes")
    return {
        "requests": len(records), "ok": len(ok), "errors": len(records) - len(ok),
        "error_samples": sorted({r.get("error", "?") for r in records if not r["ok"]})[:5],
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(len(ok) / elapsed, 3) if elapsed > 0 else None,
        "ttft_ms": {"p50": ms(percentile(ttft, 50)), "p99": ms(percentile(ttft, 99)),
                    "mean": ms(statistics.fmean(ttft)) if ttft else None},
        # every request's, in completion order: the ratios' bootstrap intervals resample them
        "ttft_ms_each": [ms(t) for t in ttft],
        "decode_tokens_per_s_per_stream": {"p50": _round(percentile(per_stream, 50)),
                                           "mean": _round(statistics.fmean(per_stream) if per_stream else None)},
        "tokens_per_s_total": _round(tokens / elapsed if elapsed > 0 else None),
        "completion_tokens_mean": _round(tokens / len(ok) if ok else None),
        "cache": {"hits": hits, "computed": computed,
                  "hit_rate": round(hits / looked_up, 4) if looked_up else None,
                  "tier_hits": tier_hits, "tier_computed": tier_computed},
        "gpu_max_allocated_gb": round(peak / 2**30, 3) if peak else None,
        "graphs": graph_counts(before, after),
        "worker": worker_split(before, after),
        "server_timings_ms_p50": {k: round(statistics.median(v), 3) for k, v in timings.items()},
    }


def _round(x, digits: int = 2):
    return None if x is None else round(x, digits)


def request_stats(corpus: Corpus, requests: list[dict]) -> dict:
    docs = [len(r["documents"]) for r in requests]
    context = [int(sum(corpus.tokens[d] for d in r["documents"])) for r in requests]
    lengths = [int(corpus.tokens[d]) for r in requests for d in r["documents"]]
    return {"documents_per_request_mean": _round(statistics.fmean(docs)),
            "context_tokens_mean": _round(statistics.fmean(context), 1),
            "document_tokens": {"min": min(lengths), "p50": percentile(lengths, 50), "max": max(lengths)}}


# ---------------------------------------------------------------- the run
def ratios(phases: list[dict]) -> list[dict]:
    """block / full (and block / hf_generate) per client count, where both were measured; the TTFT p50 ratios
    with a 95 % bootstrap interval (`..._ci95`, from each request's TTFT; None in reports from before it)."""
    by = {(p["clients"], p["mode"]): p["summary"] for p in phases}
    out = []
    for clients in sorted({p["clients"] for p in phases}):
        block = by.get((clients, "block"))
        if block is None:
            continue
        row = {"clients": clients}
        for other in ("full", "hf_generate"):
            base = by.get((clients, other))
            if base is None:
                continue
            for key, get in (("ttft_p50", lambda s: s["ttft_ms"]["p50"]), ("ttft_p99", lambda s: s["ttft_ms"]["p99"]),
                             ("tokens_per_s_total", lambda s: s["tokens_per_s_total"]),
                             ("requests_per_s", lambda s: s["requests_per_s"])):
                a, b = get(block), get(base)
                row[f"{key}_block_over_{other}"] = round(a / b, 4) if a is not None and b else None
            interval = median_ratio_interval(block.get("ttft_ms_each") or [], base.get("ttft_ms_each") or [])
            row[f"ttft_p50_block_over_{other}_ci95"] = None if interval is None else [round(v, 4) for v in interval]
        out.append(row)
    return out


QUERY_RESERVE = 192  # positions kept for the instruction prefix and the question (HotpotQA questions are short)


def context_budget(model: str, cfg: ServeBenchConfig) -> dict:
    """How many context positions a request may use: `cfg.context_tokens`, cut to fit the model's window with
    the new tokens, the prefix and question, and the block adapter's sink positions (k per block, s shared)."""
    from transformers import AutoConfig

    from blockattn.adapter import META_FILE
    from blockattn.engine.service import resolve_adapter
    from blockattn.models import resolve

    window = getattr(AutoConfig.from_pretrained(str(resolve(model))), "max_position_embeddings", None)
    path = resolve_adapter(cfg.adapter, model)[0] if "block" in cfg.modes else None
    meta = json.loads((path / META_FILE).read_text()) if path is not None else {}
    k, shared = int(meta.get("sinks_per_block", 0)), int(meta.get("shared_sink", 0))
    budget = cfg.context_tokens
    if window is not None:
        budget = min(budget, window - cfg.new_tokens - shared - 2 * k - QUERY_RESERVE)
    if budget < 16:
        raise UserError(f"the model's {window}-position window leaves no room for documents")
    return {"window": window, "sinks_per_block": k, "shared_sink": shared, "context_positions": budget}


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def _model_path(cfg: ServeBenchConfig, scratch: Path) -> str:
    if cfg.model != TINY:
        return cfg.model
    from blockattn.models.tiny import save_tiny_model

    return str(save_tiny_model(scratch / "tiny", max_position_embeddings=max(2048, 2 * cfg.context_tokens)))


def run(cfg: ServeBenchConfig, command: str, out: Path, log=print) -> dict:
    """Run every phase; the JSON at `out` is rewritten after each one (and its plot at the end)."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    if threading.current_thread() is threading.main_thread():  # killed at a cap: the servers still stop
        signal.signal(signal.SIGTERM, _exit_on_signal)
    scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    result: dict = {"benchmark": "serve", "config": asdict(cfg),
                    "env": {"python": platform.python_version(), "torch": torch.__version__,
                            "gpu": torch.cuda.get_device_name(0) if cfg.device == "cuda" else None},
                    "phases": [], "ratios": [], "partial": True}
    targets: dict = {}
    try:
        model = _model_path(cfg, scratch)
        result["context"] = context = context_budget(model, cfg)
        # the servers load while this process reads the corpus; each is measured alone, the others idle
        failed: dict[str, str] = {}

        def start(mode: str) -> None:
            try:
                targets[mode] = ServerTarget(mode, model, cfg)
            except Exception as exc:  # noqa: BLE001 - recorded; the other modes still run
                failed[mode] = f"{type(exc).__name__}: {exc}"[-2000:]  # the end of a traceback says why

        starting = {m: threading.Thread(target=start, args=(m,)) for m in cfg.modes if m in SERVER_MODES}
        for thread in starting.values():
            thread.start()
        from blockattn.models import load_tokenizer

        tokenizer = AutoTokenizer.from_pretrained(model) if cfg.model == TINY else load_tokenizer(model)
        corpus = load_corpus(tokenizer, cfg.corpus)
        result["corpus"] = {"documents": len(corpus.documents), "questions": len(corpus.questions),
                            "document_tokens_mean": _round(float(corpus.tokens.mean()), 1)}
        if "hf_generate" in cfg.modes:
            targets["hf_generate"] = HFTarget(model, cfg)
        for thread in starting.values():
            thread.join()
        if failed:
            result["failed_to_start"] = failed
            log(f"did not start: {failed}")
        modes = [m for m in cfg.modes if m in targets]
        if not modes:
            raise RuntimeError(f"no server started: {failed}")
        share = cfg.time_budget_s / (len(cfg.clients) * len(modes))
        log(f"{len(corpus.documents)} documents; {len(cfg.clients)} phases × {len(modes)} modes, "
            f"{share:.1f} s each")
        for index, clients in enumerate(cfg.clients):
            warm, measured = phase_plan(corpus, cfg, index, clients, context["context_positions"],
                                        context["sinks_per_block"])
            stats = request_stats(corpus, measured)
            for mode in modes:
                target = targets[mode]
                mode_warm = warm if mode == "block" else warm[:4]
                phase = asyncio.run(_phase(target, corpus, mode_warm, measured, clients, cfg, share))
                phase.update(clients=clients, mode=mode, requests_planned=len(measured), **stats)
                result["phases"].append(phase)
                s = phase["summary"]
                log(f"{mode:>11} × {clients:>3} clients: {s['ok']}/{s['requests']} ok, TTFT p50 "
                    f"{s['ttft_ms']['p50']} ms p99 {s['ttft_ms']['p99']} ms, {s['tokens_per_s_total']} tok/s total, "
                    f"{s['decode_tokens_per_s_per_stream']['p50']} tok/s per stream, hit rate "
                    f"{s['cache']['hit_rate']}{' (cut short by time)' if phase['cut_short'] else ''}")
                result["ratios"] = ratios(result["phases"])
                write_report({**result, **provenance(cfg.seed, time.perf_counter() - started, command)}, out)
        result["partial"] = False
    finally:
        for target in targets.values():
            target.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result.update(provenance(cfg.seed, time.perf_counter() - started, command))
    write_report(result, out, plot if result["phases"] else None)
    return result


async def _phase(target, corpus: Corpus, warm: list[dict], measured: list[dict], clients: int,
                 cfg: ServeBenchConfig, share_s: float) -> dict:
    await target.open(cfg, corpus, clients)
    processes = target.pool and len(target.pool.workers) or 1
    try:
        warm_records, warm_s, _ = await drive(target, corpus, warm, clients, cfg, None)
        before = await asyncio.to_thread(target.metrics)
        records, elapsed, cut = await drive(target, corpus, measured, clients, cfg, time.monotonic() + share_s)
        after = await asyncio.to_thread(target.metrics)
    finally:
        await target.close()
    return {"warmup": {"requests": len(warm_records), "errors": sum(not r["ok"] for r in warm_records),
                       "seconds": round(warm_s, 2)},
            "cut_short": cut, "client_processes": processes, "summary": summarise(records, elapsed, before, after)}


def table(result: dict) -> str:
    lines = ["mode         clients  ok/req   TTFT p50 ms  TTFT p99 ms  tok/s/stream  tok/s total  req/s  hit rate"]
    for p in result["phases"]:
        s = p["summary"]
        lines.append(f"{p['mode']:<12} {p['clients']:>7}  {s['ok']:>3}/{s['requests']:<3}  {_cell(s['ttft_ms']['p50'])}"
                     f"  {_cell(s['ttft_ms']['p99'])}  {_cell(s['decode_tokens_per_s_per_stream']['p50'], 12)}"
                     f"  {_cell(s['tokens_per_s_total'])}  {_cell(s['requests_per_s'], 5)}  "
                     f"{_cell(s['cache']['hit_rate'], 8)}{'  (cut short)' if p['cut_short'] else ''}")
    return "\n".join(lines)


def _cell(x, width: int = 11) -> str:
    return f"{'n/a' if x is None else x:>{width}}"


def plot(result: dict, path: Path) -> None:
    """TTFT p50 (solid) and p99 (dashed) against client count, one colour per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, mode in enumerate(MODES):
        rows = [p for p in result["phases"] if p["mode"] == mode and p["summary"]["ttft_ms"]["p50"] is not None]
        if not rows:
            continue
        x = [p["clients"] for p in rows]
        ax.plot(x, [p["summary"]["ttft_ms"]["p50"] for p in rows], "o-", color=f"C{i}", label=f"{mode} p50")
        ax.plot(x, [p["summary"]["ttft_ms"]["p99"] for p in rows], "o--", color=f"C{i}", alpha=0.6,
                label=f"{mode} p99")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    clients = sorted({p["clients"] for p in result["phases"]})
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("TTFT (ms, streamed)")
    ax.set_title(f"bench serve: {result['config']['model']}, ~{result['config']['context_tokens']} context tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)
