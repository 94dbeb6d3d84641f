"""Inference on block attention: the block KV-cache engine, text generation, and the OpenAI-compatible server.

    prompt.py        documents + question / chat messages → token blocks (chat template; full == block tokens)
    keys.py          content keys of block K/V (model, adapter, dtype, sinks, tokens)
    store.py         tiered block store: GPU (LRU) → CPU (LRU) → disk (`disk.py`), in-flight de-duplication
    blockprefill.py  missing blocks prefilled alone, batched
    kvbuffer.py      a request's preallocated KV buffer (a transformers Cache)
    assemble.py      cached blocks placed into the buffer, keys re-rotated to their offsets
    attention.py     the query's attention over the buffer (flash, GQA, lower-right causal)
    graphs.py        optional CUDA graphs of the query forward
    engine.py        BlockEngine: prefill / decode_one_token / generate, over token ids
    sampling.py      greedy, temperature, top-p (seeded)
    text.py          token ids → text deltas, stop strings
    service.py       the engine with a tokenizer: what `blockattn generate` and the server run on
    segmenting.py    documents → blocks ("none", or the segmenter with "auto")
    generate.py      the uncached reference (`answer`), which the engine must agree with
    server/          FastAPI app, request schemas, model thread, Prometheus metrics
"""
