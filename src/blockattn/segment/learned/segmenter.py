"""The learned segmenter: boundary log-odds per candidate and level, then DP decoding (numpy only).

    --level L          levels are decoded coarsest first, each one inside the blocks of the one above
                       (forced cuts), each into round(N / M_L) blocks, M_L being that level's mean block
                       length calibrated on SemanticSeg (issue 14: a count from the length, not from
                       thresholded probabilities, which under-cut unseen text). The model chooses where.
                       Finer levels therefore refine coarser ones, and each level has more blocks than the
                       one above whenever the text has a candidate left to cut at and is at least one
                       typical block of that level long. Where the limits admit no such count, that level
                       falls back to free decoding under its log-normal length prior.
    --num-blocks K     exactly K blocks: the K−1 cuts of highest total log-odds (under the limits), using
    --target-tokens T  the level whose expected block count is nearest K (T means K = round(N / T)).

Hard min/max token limits hold in every mode; word candidates are added inside units longer than
max_tokens, with a low score so they are used only where needed.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from blockattn.errors import UserError
from blockattn.segment.decode import Infeasible, LogNormalPrior, decode, no_prior
from blockattn.segment.document import Document
from blockattn.segment.fit import SPAN_FACTOR, decode_bounded
from blockattn.segment.learned import config as cfg
from blockattn.segment.learned.embeddings import StaticEmbeddings
from blockattn.segment.learned.features import unit_count, unit_features
from blockattn.segment.learned.tagger import Tagger, TaggerEnsemble, same_architecture
from blockattn.segment.methods import Segmenter
from blockattn.segment.request import LEVELS, Request

WEIGHTS_ASSET = "learned.safetensors"
WEIGHTS_ENV = "BLOCKATTN_SEGMENTER_WEIGHTS"  # a weights file to use instead of the shipped one
MEMBERS_KEY = "members"  # metadata of an ensemble's weights file: how many taggers it holds
MEMBER_CONFIGS_KEY = "member_taggers"  # ... and each one's architecture (they may differ in lexical windows)
_CHUNK_UNITS = 8192  # units featurised at once: bounds memory on very long texts
_WORD_LOGIT = -8.0  # score of a word-level cut (only there to meet a hard maximum)
# --level: up to this many blocks, the exact-count DP (cost grows with the count); above it (texts of
# hundreds of thousands of tokens) free decoding with the level's log-odds shifted so that as many
# candidates score above zero as blocks are asked for — the count then comes out close, not exact.
_EXACT_LEVEL_BLOCKS = 256
# A level's exact-count search first bounds a block to this many times the level's mean length.
_LEVEL_SPAN_FACTOR = 4


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class LearnedSegmenter(Segmenter):
    name = "learned"

    def __init__(self, embeddings: StaticEmbeddings | None = None, tagger: Tagger | None = None,
                 decoding: cfg.DecodeConfig | None = None):
        """Parts given explicitly (training validates with in-memory weights), or loaded on first use from
        $BLOCKATTN_SEGMENTER_WEIGHTS or the shipped weights."""
        self._parts = (embeddings, tagger, decoding) if tagger is not None else None

    @property
    def parts(self) -> tuple[StaticEmbeddings, Tagger, cfg.DecodeConfig]:
        if self._parts is None:
            self._parts = load_weights(os.environ.get(WEIGHTS_ENV))
        return self._parts

    @property
    def decoding(self) -> cfg.DecodeConfig:
        return self.parts[2]

    def logits(self, doc: Document) -> np.ndarray:
        """(n candidates, levels) raw boundary log-odds (level biases not applied), memoised on `doc`."""
        if "learned" not in doc.memo:
            emb, tagger, _ = self.parts
            n_units = unit_count(doc)
            out = np.zeros((n_units, len(tagger.config.levels)), dtype=np.float32)
            context, lexical = tagger.config.window, tagger.config.lexical_windows
            for lo in range(0, n_units, _CHUNK_UNITS):
                hi = min(lo + _CHUNK_UNITS, n_units)
                a, b = max(0, lo - context), min(n_units, hi + context)
                out[lo:hi] = tagger.logits(unit_features(doc, emb, a, b, lexical))[lo - a:hi - a]
            doc.memo["learned"] = out[1:]  # unit u ≥ 1 starts right after candidate u − 1
        return doc.memo["learned"]

    def gains(self, doc: Document, request: Request) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidate offsets, token positions, (n, levels) log-odds) for the request's candidate set
        (word candidates included, with a low score, when a hard maximum needs them)."""
        scores = self.logits(doc)
        cands = doc.candidates_within(request.max_tokens)
        if len(cands) == len(doc.candidates):
            return doc.candidates.offsets, doc.candidate_tokens, scores
        full = np.full((len(cands), scores.shape[1]), _WORD_LOGIT, dtype=np.float32)
        full[np.searchsorted(cands.offsets, doc.candidates.offsets)] = scores
        return cands.offsets, doc.tokens.before(cands.offsets), full

    def cut(self, doc: Document, request: Request) -> np.ndarray:
        total = doc.total_tokens
        if total < request.min_tokens or len(doc.candidates) == 0 and request.max_tokens is None:
            return np.zeros(0, dtype=np.int64)
        offsets, positions, scores = self.gains(doc, request)
        if request.mode == "level":
            return offsets[self._decode_level(scores, positions, total, request)]
        k = min(request.block_count(total, self.decoding.level_tokens), len(offsets) + 1)
        level = self.level_for_count(scores, k)
        chosen = decode_bounded(scores[:, level], positions, total, self._count_prior(total / k),
                                min_tokens=request.min_tokens,
                                max_tokens=request.max_tokens, num_blocks=k)
        return offsets[chosen]

    @staticmethod
    def level_for_count(scores: np.ndarray, num_blocks: int) -> int:
        """The level whose expected block count (1 + Σ P(boundary)) is nearest `num_blocks` (in log)."""
        expected = 1.0 + _sigmoid(scores).sum(axis=0)
        return int(np.argmin(np.abs(np.log(expected) - np.log(num_blocks))))

    def _level_prior(self, level: str) -> LogNormalPrior:
        d = self.decoding
        return LogNormalPrior(d.level_tokens[level], d.level_sigma[level], d.level_prior_weight[level])

    def _count_prior(self, mean_tokens: float):
        d = self.decoding
        return LogNormalPrior(mean_tokens, d.count_prior_sigma, d.count_prior_weight) if d.count_prior_weight > 0 \
            else no_prior

    def decode_one_level(self, scores: np.ndarray, positions: np.ndarray, total: int, level: str,
                         request: Request, forced: np.ndarray | None = None, num_blocks: int | None = None
                         ) -> np.ndarray:
        """Decoding of one level: exactly `num_blocks` blocks of highest total log-odds (under the count
        prior, as for --num-blocks; about that many past _EXACT_LEVEL_BLOCKS); without a count, its
        log-odds plus its tuned bias under its length prior. The limits and forced cuts hold either way."""
        column = scores[:, LEVELS.index(level)]
        if num_blocks is not None and num_blocks <= _EXACT_LEVEL_BLOCKS:
            span = None if request.max_tokens else _LEVEL_SPAN_FACTOR * -(-total // num_blocks)
            return decode(column, positions, total, self._count_prior(total / num_blocks),
                          min_tokens=request.min_tokens, max_tokens=request.max_tokens, forced=forced,
                          num_blocks=num_blocks, span_tokens=span)
        if num_blocks is not None:
            shift = -np.partition(column, len(column) - num_blocks + 1)[len(column) - num_blocks + 1]
            mean = total / num_blocks
            return decode(column + shift, positions, total, self._count_prior(mean),
                          min_tokens=request.min_tokens, max_tokens=request.max_tokens, forced=forced,
                          span_tokens=None if request.max_tokens else SPAN_FACTOR * int(mean))
        span = None if request.max_tokens else SPAN_FACTOR * int(self.decoding.level_tokens[level])
        return decode(column + self.decoding.level_bias[level], positions, total, self._level_prior(level),
                      min_tokens=request.min_tokens, max_tokens=request.max_tokens, forced=forced,
                      span_tokens=span)

    def _decode_level(self, scores: np.ndarray, positions: np.ndarray, total: int, request: Request) -> np.ndarray:
        forced = np.zeros(0, dtype=np.int64)
        for level in LEVELS[:LEVELS.index(request.level) + 1]:
            mean = self.decoding.level_mean_tokens[level]
            k = Request(level=level, min_tokens=request.min_tokens,
                        max_tokens=request.max_tokens).block_count(total, self.decoding.level_mean_tokens)
            # Finer must mean more blocks (at least one more than the level above) once the text is at
            # least one block of this level long; a shorter text may stay one block at every level.
            if level != LEVELS[0] and total >= mean:
                k = max(k, len(forced) + 2)
            k = min(max(k, len(forced) + 1), len(positions) + 1)
            try:
                forced = self.decode_one_level(scores, positions, total, level, request, forced, num_blocks=k)
            except Infeasible:  # the limits rule that count out: let the length prior choose one
                forced = self.decode_one_level(scores, positions, total, level, request, forced)
        return forced


@functools.cache
def _load_cached(path: str) -> tuple[StaticEmbeddings, Tagger | TaggerEnsemble, cfg.DecodeConfig]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError) as exc:  # missing, unreadable, or not a safetensors file
        raise UserError(f"{path}: not a readable segmenter weights file ({exc})") from None
    if "tagger" not in metadata or "decode" not in metadata:
        raise UserError(f"{path}: not a segmenter weights file (no tagger/decode settings in its metadata)")
    tagger_config, decoding = cfg.load(metadata)
    emb = StaticEmbeddings.from_arrays(arrays)
    members = int(metadata.get(MEMBERS_KEY, 0))
    if not members:  # one tagger: tensors "tagger.<name>"
        return emb, Tagger(tagger_config, _with_prefix(arrays, "tagger.")), decoding
    # an ensemble: tensors "tagger.<i>.<name>" for member i, each member's architecture in MEMBER_CONFIGS_KEY
    # (the first ensemble files, of identical members, had only the top-level architecture)
    configs = ([cfg.TaggerConfig(**c) for c in json.loads(metadata[MEMBER_CONFIGS_KEY])]
               if MEMBER_CONFIGS_KEY in metadata else [tagger_config] * members)
    return emb, TaggerEnsemble([Tagger(c, _with_prefix(arrays, f"tagger.{i}.")) for i, c in enumerate(configs)]), \
        decoding


def _with_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_weights(path: str | Path | None = None) -> tuple[StaticEmbeddings, Tagger | TaggerEnsemble, cfg.DecodeConfig]:
    """Embeddings, tagger and decoding settings from a weights file (default: the shipped one)."""
    if path is None:
        from blockattn.segment.assets import asset

        path = asset(WEIGHTS_ASSET)
        if not path.is_file():
            raise UserError("the learned segmenter has no weights yet: run `blockattn segment train`, "
                            "or choose a baseline with --method")
    return _load_cached(str(path))


def save_weights(path: str | Path, emb: StaticEmbeddings,
                 tagger_weights: dict[str, np.ndarray] | list[dict[str, np.ndarray]],
                 tagger_config: cfg.TaggerConfig | list[cfg.TaggerConfig], decoding: cfg.DecodeConfig) -> None:
    """Write one safetensors file: embeddings, float16 tagger weights, both configs as metadata. Lists of
    weights and configs (one per member) write an ensemble."""
    from safetensors.numpy import save_file

    ensemble = isinstance(tagger_weights, list)
    members = tagger_weights if ensemble else [tagger_weights]
    configs = (tagger_config if isinstance(tagger_config, list) else [tagger_config] * len(members))
    if len(configs) != len(members):
        raise ValueError(f"{len(members)} members but {len(configs)} tagger configs")
    prefixes = [f"tagger.{i}." for i in range(len(members))] if ensemble else ["tagger."]
    arrays = {**emb.to_arrays(), **{f"{prefix}{k}": v.astype(np.float16)
                                    for prefix, weights in zip(prefixes, members) for k, v in weights.items()}}
    # safetensors writes an array's raw buffer: a transposed view would come back scrambled.
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    metadata = cfg.dump(configs[0], decoding)
    if ensemble:
        metadata[MEMBERS_KEY] = str(len(members))
        metadata[MEMBER_CONFIGS_KEY] = json.dumps([json.loads(cfg.dump(c, decoding)["tagger"]) for c in configs])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.tmp")
    save_file(arrays, str(tmp), metadata=metadata)
    tmp.replace(path)  # never a half-written weights file


def combine_weights(paths: list[str | Path], out: str | Path) -> int:
    """One ensemble weights file from several (each a single tagger or an ensemble itself); returns its number
    of taggers. All must share the token embeddings and the tagger architecture (train them with
    --embeddings-from one file); the decoding settings are the first file's."""
    if len(paths) < 2:
        raise UserError("an ensemble needs at least two weights files")
    loaded = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such weights file")
        loaded.append(_load_cached(str(Path(path).resolve())))
    emb, first, decoding = loaded[0]
    for path, (other_emb, tagger, _) in zip(paths, loaded):
        if not (np.array_equal(other_emb.codes, emb.codes) and np.array_equal(other_emb.scales, emb.scales)):
            raise UserError(f"{path}: its token embeddings differ from {paths[0]}'s; ensemble members must "
                            "share them (train with --embeddings-from the same file)")
        if not same_architecture(tagger.config, first.config):
            raise UserError(f"{path}: its tagger architecture differs from {paths[0]}'s "
                            "(members may differ in --lexical-windows only)")
    taggers = TaggerEnsemble([tagger for _, tagger, _ in loaded]).members
    save_weights(out, emb, [t.state_arrays() for t in taggers], [t.config for t in taggers], decoding)
    return len(taggers)
