"""Building SemanticSeg: fetch → parse → plan → instances → card, with progress bars and atomic output.

Guarantees of `build`:
- deterministic: the same seed, instance count and categories give byte-identical Parquet files,
  whatever `workers` is (every category draws from its own seeded generator);
- resumable: fetched packages, parsed documents and their token counts are cached under $BLOCKATTN_HOME,
  so a killed build restarts from where the caches stand; instances are cheap and simply made again;
- atomic: everything is written to a hidden folder beside DIR and renamed into place at the end, so DIR is
  either the previous complete build, the new complete build, or absent — never half-written;
- user errors (unknown category, unreachable package, disk full, a DIR that is not a dataset) raise
  `UserError` naming the culprit.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from blockattn.data import parquet
from blockattn.data.documents import Document
from blockattn.data.instances import Candidate, Planner, log_uniform
from blockattn.data.splits import SPLITS, assign_splits
from blockattn.data.tokens import count_tokens
from blockattn.errors import UserError

MIN_TOKENS, MAX_TOKENS = 2048, 32768
# Each token of a category's text appears in about this many instances at most; categories with little
# text get fewer instances and their share goes to the others (recorded in the card). 30k instances of
# ~11k tokens need ~330M tokens of windows from ~76M tokens of source text, so some reuse is unavoidable;
# 8 reaches 30k with 14 of 17 categories above 900 instances. The unseen set is for judging: less reuse.
MAX_REUSE = 8.0
UNSEEN_MAX_REUSE = 3.0
NATURAL_SHARE = 0.5      # natural documents vs concatenations, where a category has both
MARKUP_SHARE = 0.3       # instances that keep headings/separators: most must not (issue 3)
_MEAN_TOKENS = (MAX_TOKENS - MIN_TOKENS) / np.log(MAX_TOKENS / MIN_TOKENS)  # of the log-uniform length
_BATCH = 32
# Text this dense in tokens is a data table (hex literals, byte arrays, Unicode range tables) or otherwise
# not prose or code a user would segment: English prose runs ~4.5 characters per token of the dataset
# tokenizer, code ~3, and the Go tables of issue 14 ~1.1-1.35. Windows below this are dropped whatever their
# source, so a table inside an otherwise hand-written file (encoding/xml's range tables) cannot slip in.
MIN_CHARS_PER_TOKEN = 1.5
MARKER = "semanticseg.json"   # present in every finished build: what `stats` and rebuilds look for


@dataclass(frozen=True)
class SourceSummary:
    name: str
    category: str
    n_documents: int
    group_tokens: dict[str, int]    # split group → tokens


@dataclass(frozen=True)
class CategoryJob:
    category: str
    sources: tuple[str, ...]
    splits: dict[str, str]          # group → split
    quotas: dict[str, int]          # split → instances wanted
    seed: int
    staging: str


def unique_documents(documents: list[Document], counts: list) -> tuple[list[Document], list]:
    """Documents (with their piece counts) in id order, exact duplicate texts (a licence shipped twice, a
    repeated quote) kept once: duplicates would otherwise leak across splits."""
    seen, docs, kept = set(), [], []
    for doc, count in sorted(zip(documents, counts), key=lambda pair: pair[0].id):
        digest = hashlib.sha256(doc.text().encode()).digest()
        if digest not in seen:
            seen.add(digest)
            docs.append(doc)
            kept.append(count)
    return docs, kept


def summarize_source(name: str, progress: Callable[[int], None] | None = None) -> SourceSummary:
    """Parse a source and count its pieces' tokens (both cached); sum the tokens per split group."""
    from blockattn.data.sources import get_source, load_documents, load_piece_counts

    docs, counts = load_documents(name), load_piece_counts(name)
    groups: dict[str, int] = {}
    for doc, count in zip(docs, counts):
        groups[doc.group] = groups.get(doc.group, 0) + int(count.count_p.sum())
    return SourceSummary(name, get_source(name).category, len(docs), groups)


def group_splits(category: str, unseen: bool = False) -> dict[str, str]:
    """The split of every source group of a category, exactly as `build` assigns them."""
    from blockattn.data.sources import UNSEEN, sources_for

    sources = [s for s in UNSEEN if s.category == category] if unseen else sources_for([category])
    summaries = [summarize_source(s.name) for s in sources]
    return (test_only if unseen else assign_splits)({g: n for s in summaries for g, n in s.group_tokens.items()})


def test_only(group_sizes: dict[str, int]) -> dict[str, str]:
    """The split assignment of an evaluation-only set: everything is `test`."""
    return dict.fromkeys(group_sizes, "test")


def plan_quotas(summaries: list[SourceSummary], n_instances: int,
                assign: Callable[[dict[str, int]], dict[str, str]] = assign_splits,
                max_reuse: float = MAX_REUSE) -> dict[str, dict[str, int]]:
    """Instances per category and split: equal shares, capped by each category's text (MAX_REUSE), the
    remainder spread over categories with room; within a category, by each split's share of the text."""
    by_cat: dict[str, list[SourceSummary]] = {}
    for s in summaries:
        by_cat.setdefault(s.category, []).append(s)
    tokens = {c: sum(sum(s.group_tokens.values()) for s in ss) for c, ss in by_cat.items()}
    capacity = {c: max(1, int(max_reuse * t / _MEAN_TOKENS)) for c, t in tokens.items()}
    quota = dict.fromkeys(by_cat, 0)
    left = n_instances
    while left > 0:
        open_cats = sorted(c for c in by_cat if quota[c] < capacity[c])
        if not open_cats:
            break
        share, extra = divmod(left, len(open_cats))
        for k, c in enumerate(open_cats):
            give = min(share + (1 if k < extra else 0), capacity[c] - quota[c])
            quota[c] += give
            left -= give
    plan = {}
    for c, ss in by_cat.items():
        splits = assign({g: n for s in ss for g, n in s.group_tokens.items()})
        split_tokens = dict.fromkeys(SPLITS, 0)
        for s in ss:
            for g, n in s.group_tokens.items():
                split_tokens[splits[g]] += n
        total = sum(split_tokens.values()) or 1
        raw = {sp: quota[c] * split_tokens[sp] / total for sp in SPLITS}
        counts = {sp: int(v) for sp, v in raw.items()}
        for sp in sorted(SPLITS, key=lambda sp: raw[sp] - counts[sp], reverse=True)[: quota[c] - sum(counts.values())]:
            counts[sp] += 1
        plan[c] = counts
    return plan


def _draw(planner: Planner, target: float, rng: np.random.Generator) -> Candidate | None:
    markup = bool(rng.random() < MARKUP_SHARE)
    order = ("natural", "concat") if rng.random() < NATURAL_SHARE else ("concat", "natural")
    for kind in order:
        draw = planner.natural_candidate if kind == "natural" else planner.concat_candidate
        candidate = draw(target, markup, rng)
        if candidate is not None:
            return candidate
    return None


# Every VERIFY_EVERY-th accepted instance is also counted whole, to catch any error in adding up piece
# counts (blockattn.data.tokens); a fixed sample, so builds stay deterministic.
VERIFY_EVERY = 50


def too_dense(text: str, n_tokens: int) -> bool:
    """Whether a text is junk for segmentation by its characters per token (see MIN_CHARS_PER_TOKEN)."""
    return len(text) < MIN_CHARS_PER_TOKEN * n_tokens


def make_instances(planner: Planner, quota: int, rng: np.random.Generator, seen: set[bytes],
                   progress: Callable[[int], None]) -> list[tuple[Candidate, int]]:
    """Up to `quota` distinct candidates whose exact token count lies in [MIN_TOKENS, MAX_TOKENS], lengths
    log-uniform over that range, none of them `too_dense`."""
    accepted: list[tuple[Candidate, int]] = []
    attempts = 0
    while len(accepted) < quota and attempts < 20 * quota + 100:
        batch = []
        for _ in range(min(_BATCH, 2 * (quota - len(accepted)))):
            attempts += 1
            candidate = _draw(planner, log_uniform(rng, MIN_TOKENS, MAX_TOKENS), rng)
            if candidate is not None:
                batch.append(candidate)
        unsafe = [c.text for c in batch if c.n_tokens is None]
        counted = iter(count_tokens(unsafe))
        for candidate in batch:
            n = candidate.n_tokens if candidate.n_tokens is not None else next(counted)
            digest = hashlib.sha256(candidate.text.encode()).digest()
            if MIN_TOKENS <= n <= MAX_TOKENS and digest not in seen and len(accepted) < quota \
                    and not too_dense(candidate.text, n):
                if len(accepted) % VERIFY_EVERY == 0 and candidate.n_tokens is not None:
                    whole = count_tokens([candidate.text])[0]
                    if whole != n:
                        raise RuntimeError(f"token count by pieces {n} != whole-text count {whole} "
                                           f"({candidate.documents[:3]}): a bug in blockattn.data.tokens")
                seen.add(digest)
                accepted.append((candidate, n))
                progress(1)
    return accepted


def build_category(job: CategoryJob, progress: Callable[[int], None]) -> list[dict]:
    """All instances of one category, written to the staging folder; returns one stats row per instance."""
    from blockattn.data.hierarchy import deepen
    from blockattn.data.sources import load_documents, load_piece_counts

    # Levels only change here (issue 14), never text: cached piece counts stay valid.
    documents, counts = unique_documents([deepen(d) for s in job.sources for d in load_documents(s)],
                                         [c for s in job.sources for c in load_piece_counts(s)])
    split_of = [job.splits.get(d.group) for d in documents]
    seen: set[bytes] = set()
    stats = []
    for k, split in enumerate(SPLITS):
        if job.quotas.get(split, 0) == 0:
            continue
        docs = [d for d, sp in zip(documents, split_of) if sp == split]
        docs_counts = [c for c, sp in zip(counts, split_of) if sp == split]
        rng = np.random.default_rng([job.seed, zlib.crc32(job.category.encode()), k])
        made = make_instances(Planner(docs, docs_counts), job.quotas[split], rng, seen, progress) if docs else []
        rows = []
        for i, (c, n) in enumerate(made):
            rows.append({"id": f"{job.category}-{split}-{i:05d}", "category": job.category,
                         "source": c.source, "kind": c.kind, "text": c.text, "n_tokens": n,
                         "boundaries": c.boundaries, "markup": c.markup, "documents": c.documents})
            stats.append({"split": split, "category": job.category, "kind": c.kind, "markup": c.markup,
                          "n_tokens": n, **{f"n_{lv}": len(b) for lv, b in c.boundaries.items()}})
        if rows:
            parquet.write_rows(parquet.split_file(Path(job.staging), split, job.category), rows)
    return stats


# --- running stages, in-process or on a pool ------------------------------------------------------------

_QUEUE = None  # in a pool worker: where progress ticks go


def _init_worker(queue) -> None:
    global _QUEUE
    _QUEUE = queue
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # W processes already keep W cores busy


def _report(n: int) -> None:
    _QUEUE.put(n)


def _checked(fn, job, progress):
    """Run a stage function, turning a full disk into a UserError (a pool re-raises it in the parent)."""
    try:
        return fn(job, progress)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"disk full ({exc.filename or 'while writing'})") from None
        raise


def _in_worker(fn, job):
    return _checked(fn, job, _report)


class Runner:
    """Maps a stage function `fn(job, progress)` over jobs, in-process (workers=1) or on a spawn pool,
    calling `on_done(result)` as jobs finish and `on_tick(n)` for progress reported inside jobs."""

    def __init__(self, workers: int):
        self.pool = self.queue = None
        if workers > 1:
            ctx = get_context("spawn")
            self.queue = ctx.Manager().Queue()
            self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(self.queue,))

    def _drain(self, on_tick: Callable[[int], None]) -> None:
        while not self.queue.empty():
            on_tick(self.queue.get())

    def map(self, fn, jobs: list, on_done: Callable[[object], None], on_tick: Callable[[int], None]) -> list:
        if self.pool is None:
            results = []
            for job in jobs:
                results.append(_checked(fn, job, on_tick))
                on_done(results[-1])
            return results
        futures: list[Future] = [self.pool.submit(_in_worker, fn, job) for job in jobs]
        pending = set(futures)
        while pending:
            for f in [f for f in pending if f.done()]:
                pending.discard(f)
                on_done(f.result())
            self._drain(on_tick)
            time.sleep(0.05)
        self._drain(on_tick)
        return [f.result() for f in futures]

    def close(self, failed: bool = False) -> None:
        """Stop the pool; after a failure (or Ctrl-C) without waiting for jobs still running."""
        if self.pool is not None:
            self.pool.shutdown(wait=not failed, cancel_futures=True)


# --- the build ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    out: Path
    stats: list[dict]       # one row per instance (no text)
    seconds: float


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)


def build(out: str | Path, n_instances: int = 30000, categories: list[str] | None = None, seed: int = 0,
          workers: int = 1, command: str = "", unseen: str | None = None) -> BuildResult:
    """Build SemanticSeg into `out` (see the module docstring for what is guaranteed). With `unseen` (a name
    in UNSEEN_SETS), build that held-out evaluation set instead: its reserved sources, same schema, split
    `test` only."""
    from blockattn.data.output import Staging
    from blockattn.data.sources import UNSEEN_SETS, fetch_source, is_parsed, sources_for

    if n_instances < 1:
        raise UserError(f"--instances must be at least 1 (got {n_instances})")
    if workers < 1:
        raise UserError(f"--workers must be at least 1 (got {workers})")
    if unseen and unseen not in UNSEEN_SETS:
        raise UserError(f"unknown unseen set {unseen!r} (known: {', '.join(UNSEEN_SETS)})")
    sources = list(UNSEEN_SETS[unseen]) if unseen else sources_for(categories)
    assign = test_only if unseen else assign_splits
    max_reuse = UNSEEN_MAX_REUSE if unseen else MAX_REUSE
    staging = Staging(Path(out), MARKER)
    start = time.time()
    runner = Runner(min(workers, len(sources)))
    try:
        with staging as tmp, _progress() as bars:
            # Sources parsed before need no packages; downloads are I/O-bound and fast, so one at a time
            # (which keeps errors clear).
            to_fetch = [s for s in sources if not is_parsed(s)]
            fetch_bar = bars.add_task("fetch", total=sum(len(s.packages) for s in to_fetch))
            for source in to_fetch:
                fetch_source(source)
                bars.advance(fetch_bar, len(source.packages))
            bars.stop_task(fetch_bar)  # freezes its clock even when nothing needed fetching
            parse_bar = bars.add_task("parse", total=len(sources))
            summaries = runner.map(summarize_source, [s.name for s in sources],
                                   lambda _: bars.advance(parse_bar), lambda n: None)
            bars.stop_task(parse_bar)
            plan = plan_quotas(summaries, n_instances, assign, max_reuse)
            jobs = []
            for cat in sorted(plan):
                cat_sources = [s for s in summaries if s.category == cat]
                splits = assign({g: n for s in cat_sources for g, n in s.group_tokens.items()})
                jobs.append(CategoryJob(cat, tuple(s.name for s in cat_sources), splits, plan[cat], seed, str(tmp)))
            # Largest categories first, so the pool's last job is a short one.
            jobs.sort(key=lambda j: -sum(j.quotas.values()))
            inst_bar = bars.add_task("instances", total=sum(sum(j.quotas.values()) for j in jobs))
            per_category = runner.map(build_category, jobs, lambda _: None, lambda n: bars.advance(inst_bar, n))
            stats = sorted((r for rows in per_category for r in rows),
                           key=lambda r: (SPLITS.index(r["split"]), r["category"]))
            if not stats:
                raise UserError("no instance could be made from the selected categories")
            _write_card(tmp, stats, summaries, plan, n_instances, categories, seed, command, unseen, max_reuse)
            staging.commit()
    except OSError as exc:
        runner.close(failed=True)
        if exc.errno == errno.ENOSPC:
            raise UserError(f"disk full while building {out}") from None
        raise
    except BaseException:
        runner.close(failed=True)
        raise
    runner.close()
    return BuildResult(Path(out), stats, time.time() - start)


def _write_card(tmp: Path, stats: list[dict], summaries: list[SourceSummary], plan: dict[str, dict[str, int]],
                n_instances: int, categories: list[str] | None, seed: int, command: str, unseen: str | None,
                max_reuse: float) -> None:
    import json

    from blockattn.data import card
    from blockattn.data.hierarchy import NO_HIERARCHY
    from blockattn.data.sources import SOURCES
    from blockattn.data.tokens import tokenizer_name

    made = len(stats)
    notes = []
    if made < n_instances:
        notes.append(f"{made} of the {n_instances} requested instances: the selected categories hold too little "
                     f"text for more without reusing each token more than {max_reuse:g} times on average.")
    planned = {c: sum(q.values()) for c, q in plan.items()}
    fair_share = n_instances // max(1, len(planned))
    for cat, want in sorted(planned.items()):
        tokens = sum(sum(s.group_tokens.values()) for s in summaries if s.category == cat)
        if want < fair_share:
            notes.append(f"{cat}: {want} instances instead of an equal share ({fair_share}): its sources hold "
                         f"{tokens / 1e6:.2f}M tokens, and each token may appear in at most {max_reuse:g} "
                         "instances on average; the other categories took the rest.")
        got = sum(r["category"] == cat for r in stats)
        if got < want:
            notes.append(f"{cat}: {got} of {want} planned instances (not enough distinct windows).")
        if cat in NO_HIERARCHY and not unseen:
            notes.append(f"{cat} levels: {NO_HIERARCHY[cat]}")
    info = {"instances requested": n_instances, "instances": made, "seed": seed,
            "categories": ",".join(categories) if categories else "all",
            "tokenizer": tokenizer_name(), "length range (tokens)": f"{MIN_TOKENS}–{MAX_TOKENS}, log-uniform",
            "natural share": NATURAL_SHARE, "markup share": MARKUP_SHARE, "max token reuse": max_reuse,
            "splits": "test only" if unseen else "train 0.8 / validation 0.1 / test 0.1 of the text, by source group"}
    sources = [{"name": s.name, "category": s.category, "documents": s.n_documents,
                "tokens": f"{sum(s.group_tokens.values()) / 1e6:.2f}M",
                "packages": ", ".join(f"`{p}`" for p in SOURCES[s.name].packages),
                "license": SOURCES[s.name].license, "description": SOURCES[s.name].description}
               for s in sorted(summaries, key=lambda s: (s.category, s.name))]
    if unseen:
        name = f"Unseen {unseen} (blockattn)"
        description = (f"An evaluation-only set in SemanticSeg's schema (split `test`), built from {unseen}: "
                       "a kind of text SemanticSeg never contains, to judge a segmenter on text it never saw. "
                       "Gold boundaries are the texts' own section headings.")
    else:
        name = "SemanticSeg (blockattn rebuild)"
        description = ("Long texts (2k–32k tokens) with gold block boundaries at three nested granularities, "
                       "for training and judging a segmenter for block attention. Built offline from text "
                       "shipped in Debian, PyPI and npm packages. R package vignettes and the Debian policy "
                       "manuals are kept out: they are the unseen evaluation sets (`blockattn data build-unseen`).")
    card.write_card(tmp / "README.md", name=name, description=description, command=command, info=info,
                    sources=sources, rows=stats, notes=notes)
    card.plot(stats, tmp / "lengths.png", f"{name}: {made} instances by category and length")
    (tmp / MARKER).write_text(json.dumps({"info": info, "sources": sources, "counts": card.count_table(stats)},
                                         indent=1, ensure_ascii=False) + "\n")
