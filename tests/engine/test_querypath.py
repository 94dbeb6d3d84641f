"""How the query step's choices are made from timings (`engine.querypath`): where flash starts, and whether a
shape keeps its graph. The timings themselves are measured on CUDA (tests/engine/test_gpu.py); here they are
given, so the rules are checked on the CPU."""

import pytest
import torch

from blockattn.engine import flashbuffer, querypath


@pytest.fixture
def flash_everywhere(monkeypatch):
    monkeypatch.setattr(flashbuffer, "flash_applies", lambda key: True)


SLOTS = (2048, 4096, 8192, 16384)


def _given(monkeypatch, pairs):
    table = [{"slots": s, "matmul_ms": m, "flash_ms": f, "chunk_slots": s // 8, "pack_gqa": s > 4096}
             for s, (m, f) in zip(SLOTS, pairs)]
    monkeypatch.setattr(querypath, "_time_paths", lambda *a: table)


@pytest.mark.parametrize("pairs,start", [
    ([(1, 2), (2, 2.5), (3, 2), (6, 3)], 8192),  # flash wins from 8k on
    ([(1, 0.5), (2, 3), (3, 2), (6, 3)], 8192),  # a win at 2k alone does not count: flash must keep winning
    ([(1, 0.5), (2, 1), (3, 2), (6, 3)], 2048),  # flash everywhere
    ([(1, 2), (2, 3), (3, 4), (6, 7)], 32768),  # never: past the longest measured length
])
def test_flash_starts_where_it_wins_and_keeps_winning(monkeypatch, flash_everywhere, pairs, start):
    _given(monkeypatch, pairs)
    plan, table = querypath.calibrate_attention(32, 8, 128, torch.bfloat16, torch.device("cpu"), default=8192,
                                                slots=SLOTS)
    assert plan.flash_from == start and len(table) == 4


def test_each_length_takes_its_fastest_split(monkeypatch, flash_everywhere):
    """A buffer takes the split timed fastest at the longest calibrated length not above it (the shortest
    one's below them all), and the split's chunk count grows with the buffer at that chunk length."""
    _given(monkeypatch, [(1, 0.5)] * 4)
    plan, _ = querypath.calibrate_attention(32, 8, 128, torch.bfloat16, torch.device("cpu"), default=8192,
                                            slots=SLOTS)
    assert plan.split_for(1000) == flashbuffer.Split(256, False)
    assert plan.split_for(4096 + 1024) == flashbuffer.Split(512, False)
    assert plan.split_for(40960) == flashbuffer.Split(2048, True)
    assert plan.split_for(40960).chunks(40960) == 20
    assert flashbuffer.Split(16).chunks(1 << 20) == flashbuffer.MAX_CHUNKS and flashbuffer.Split(64).chunks(10) == 1
    assert querypath.AttentionPlan(0).split_for(4096) is None  # nothing timed: buffer_attention's default


def test_split_options_cover_chunk_counts_and_packing():
    options = querypath.split_options(2048, grouped=True)
    assert {(o.chunks(2048), o.pack_gqa) for o in options} == {(c, p) for c in (4, 8, 16) for p in (False, True)}
    assert {o.pack_gqa for o in querypath.split_options(2048, grouped=False)} == {False}
    assert [o.chunks(256) for o in querypath.split_options(256, grouped=False)] == [1]  # too short to chunk


def test_no_flash_no_timing_and_a_failed_timing_keeps_the_default(monkeypatch):
    assert querypath.calibrate_attention(4, 2, 16, torch.float32, torch.device("cpu"), default=777) == (
        querypath.AttentionPlan(777), [])
    monkeypatch.setattr(flashbuffer, "flash_applies", lambda key: True)

    def broken(*a):
        raise RuntimeError("no kernel image")

    monkeypatch.setattr(querypath, "_time_paths", broken)
    plan, table = querypath.calibrate_attention(4, 2, 16, torch.bfloat16, torch.device("cpu"), default=777)
    assert plan.flash_from == 777 and "no kernel image" in table[0]["error"]


def test_a_graph_is_kept_unless_clearly_slower_than_eager():
    verdicts = querypath.Verdicts()
    a, b, c = [(capacity, 64, 1, "block") for capacity in (2048, 4096, 8192)]  # (capacity, T', keep, mode)
    verdicts.eager_ms[a] = verdicts.eager_ms[b] = 10.0
    assert verdicts.judge(a, 10.4)  # within the margin: the graph (less host time) stays
    assert not verdicts.judge(b, 12.0)
    assert verdicts.judge(c, 50.0)  # no eager time measured: nothing to lose to
    assert [v["graph_kept"] for v in verdicts.info()] == [True, False, True]


def test_a_long_buffer_attended_with_flash_is_not_declined_for_score_size(flash_everywhere):
    """The step declines buffers whose matmul scores would pass MAX_SCORE_BYTES, but not where flash attends
    them (it holds no scores): judged by the request buffer's capacity, not by a dimension of its tensor
    (the 5-D buffer's third dimension is the KV heads; so judged, 32k requests of the Llama-8B shape ran
    eagerly on the H200, 2026-12-03)."""
    from blockattn.engine.graphs import MAX_SCORE_BYTES, QueryGraphs
    from blockattn.engine.kvbuffer import SequenceKV

    kv = SequenceKV(1, 8, 4, 40960, torch.bfloat16, "cpu")
    assert 32 * 64 * kv.capacity * 4 > MAX_SCORE_BYTES
    assert not QueryGraphs(query_heads=32, plan=querypath.AttentionPlan(4096))._scores_too_large(kv, 64)
    assert QueryGraphs(query_heads=32, plan=querypath.AttentionPlan(65536))._scores_too_large(kv, 64)
